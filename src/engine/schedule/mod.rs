//! Automation: cron jobs, the ticker (GUI subscription and daemon alike),
//! catch-up of missed runs, retention sweeps, hooks, chaining and
//! skip-when-unchanged.

pub mod conditions;
pub mod cron;
pub mod hooks;
pub mod jobs;
pub mod retention;
pub mod rtests;
pub mod ticker;

pub use conditions::{ChangeState, Condition};
pub use cron::{CronExpr, JobTz};
pub use jobs::{ChainPolicy, Hook, HookPolicy, Job, JobConfig, JobInput, RestoreTestPlan};
pub use retention::{Gfs, PruneReport, Retention};
pub use ticker::{JobOutcome, Scheduler, SchedulerConfig, TickReport};
