//! The schedule form's run options: the conditions a run is decided on
//! (rows written, size moved by a percentage or megabytes, schema changed),
//! the chain of projects backed up after the job's own (in order, stop or
//! go on after a failure), and the hooks with their timeout and failure
//! policy. Pure state and messages: the schedule screen saves the job.

use iced::widget::{button, checkbox, column, pick_list, row, text, text_input, toggler};
use iced::{Alignment, Element, Length};

use super::choices::ProjectChoice;
use crate::engine::schedule::{ChainPolicy, Condition, Hook, HookPolicy, JobConfig};
use crate::ui::theme;
use crate::ui::widget;

pub const SIZE_PERCENT_ID: &str = "schedule-when-size-percent";
pub const SIZE_MB_ID: &str = "schedule-when-size-mb";
pub const HOOK_TIMEOUT_ID: &str = "schedule-hook-timeout";
pub const PRE_HOOK_ID: &str = "schedule-hook-pre";
pub const POST_HOOK_ID: &str = "schedule-hook-post";

#[derive(Debug, Clone)]
pub enum Message {
    WhenChanged(bool),
    WhenSize(bool),
    SizePercent(String),
    SizeMb(String),
    WhenSchema(bool),
    ChainAdd(ProjectChoice),
    ChainRemove(usize),
    ChainUp(usize),
    ChainStop(bool),
    PreHook(String),
    PostHook(String),
    HookTimeout(String),
    HookWarn(bool),
}

/// The options as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub when_changed: bool,
    pub when_size: bool,
    pub size_percent: String,
    pub size_mb: String,
    pub when_schema: bool,
    /// Projects backed up after the job's own, in order.
    pub chain: Vec<ProjectChoice>,
    pub chain_stop: bool,
    pub pre_hook: String,
    pub post_hook: String,
    pub hook_timeout: String,
    /// A failing pre-hook only warns (instead of stopping the backup).
    pub hook_warn: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            when_changed: false,
            when_size: false,
            size_percent: "10".into(),
            size_mb: String::new(),
            when_schema: false,
            chain: Vec::new(),
            chain_stop: false,
            pre_hook: String::new(),
            post_hook: String::new(),
            hook_timeout: "300".into(),
            hook_warn: false,
        }
    }
}

/// A hook as typed: none for an empty command; otherwise the timeout must
/// be 1 s to 24 h (shared with the project view's hooks card).
pub fn typed_hook(command: &str, timeout: &str, warn_only: bool) -> Result<Option<Hook>, String> {
    let command = command.trim();
    if command.is_empty() {
        return Ok(None);
    }
    let timeout_secs = timeout
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|t| (1..=24 * 3600).contains(t))
        .ok_or("the hook timeout is a number of seconds from 1 to 86400")?;
    Ok(Some(Hook {
        command: command.to_owned(),
        timeout_secs,
        on_failure: if warn_only {
            HookPolicy::Warn
        } else {
            HookPolicy::Abort
        },
    }))
}

/// Typed hook fields and the messages they send (the schedule form and
/// the project view's hooks card).
pub struct HookFields<'a, M> {
    pub pre: &'a str,
    pub post: &'a str,
    pub timeout: &'a str,
    pub warn_only: bool,
    /// Widget ids of the pre, post and timeout inputs.
    pub ids: [&'static str; 3],
    pub on_pre: fn(String) -> M,
    pub on_post: fn(String) -> M,
    pub on_timeout: fn(String) -> M,
    pub on_warn: fn(bool) -> M,
}

/// The row of hook commands and the row of timeout and failure policy
/// (a caller may push more onto the second).
pub fn hook_inputs<'a, M: Clone + 'a>(
    f: HookFields<'a, M>,
) -> (Element<'a, M>, iced::widget::Row<'a, M>) {
    let [pre_id, post_id, timeout_id] = f.ids;
    let commands = row![
        widget::field(
            "Before (shell command)",
            text_input("none", f.pre)
                .id(pre_id)
                .on_input(f.on_pre)
                .padding(theme::S),
            None,
            None
        ),
        widget::field(
            "After (shell command)",
            text_input("none", f.post)
                .id(post_id)
                .on_input(f.on_post)
                .padding(theme::S),
            None,
            None
        ),
    ]
    .spacing(theme::S)
    .into();
    let limits = row![
        widget::field(
            "Timeout (seconds)",
            text_input("300", f.timeout)
                .id(timeout_id)
                .on_input(f.on_timeout)
                .padding(theme::S)
                .width(120),
            None,
            None
        ),
        toggler(f.warn_only)
            .label("A failing pre-hook only warns (otherwise the backup does not run)")
            .on_toggle(f.on_warn),
    ]
    .spacing(theme::M)
    .align_y(Alignment::End);
    (commands, limits)
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Options {
    /// A job's options; chained ids are named from `projects`.
    pub fn from_config(config: &JobConfig, projects: &[ProjectChoice]) -> Self {
        let mut o = Options::default();
        for c in config.conditions() {
            match c {
                Condition::Changed => o.when_changed = true,
                Condition::Schema => o.when_schema = true,
                Condition::Size { percent, bytes } => {
                    // The older "skip if unchanged" is rows written or any
                    // size move: shown as rows written only.
                    if config.when.is_empty() {
                        continue;
                    }
                    o.when_size = true;
                    o.size_percent = percent.map(trim_num).unwrap_or_default();
                    o.size_mb = bytes
                        .map(|b| trim_num(b as f64 / (1024.0 * 1024.0)))
                        .unwrap_or_default();
                }
            }
        }
        o.chain = config
            .chain
            .iter()
            .map(|id| {
                projects
                    .iter()
                    .find(|p| &p.id == id)
                    .cloned()
                    .unwrap_or_else(|| ProjectChoice {
                        id: id.clone(),
                        name: "a removed project".into(),
                    })
            })
            .collect();
        o.chain_stop = config.chain_policy == ChainPolicy::Stop;
        let hook = config.pre_hook.as_ref().or(config.post_hook.as_ref());
        o.pre_hook = config
            .pre_hook
            .as_ref()
            .map(|h| h.command.clone())
            .unwrap_or_default();
        o.post_hook = config
            .post_hook
            .as_ref()
            .map(|h| h.command.clone())
            .unwrap_or_default();
        if let Some(h) = hook {
            o.hook_timeout = h.timeout_secs.to_string();
            o.hook_warn = h.on_failure == HookPolicy::Warn;
        }
        o
    }

    pub fn update(&mut self, m: Message) {
        match m {
            Message::WhenChanged(b) => self.when_changed = b,
            Message::WhenSize(b) => self.when_size = b,
            Message::SizePercent(s) => self.size_percent = s,
            Message::SizeMb(s) => self.size_mb = s,
            Message::WhenSchema(b) => self.when_schema = b,
            Message::ChainAdd(p) => {
                if !self.chain.iter().any(|c| c.id == p.id) {
                    self.chain.push(p);
                }
            }
            Message::ChainRemove(i) => {
                if i < self.chain.len() {
                    self.chain.remove(i);
                }
            }
            Message::ChainUp(i) => {
                if i > 0 && i < self.chain.len() {
                    self.chain.swap(i - 1, i);
                }
            }
            Message::ChainStop(b) => self.chain_stop = b,
            Message::PreHook(s) => self.pre_hook = s,
            Message::PostHook(s) => self.post_hook = s,
            Message::HookTimeout(s) => self.hook_timeout = s,
            Message::HookWarn(b) => self.hook_warn = b,
        }
    }

    /// Writes the options into `config`, or says what to fix.
    pub fn apply(&self, own_project: Option<&str>, config: &mut JobConfig) -> Result<(), String> {
        let mut when = Vec::new();
        if self.when_changed {
            when.push(Condition::Changed);
        }
        if self.when_size {
            let pct = self.size_percent.trim().trim_end_matches('%').trim();
            let mb = self.size_mb.trim();
            let percent = match pct {
                "" => None,
                p => Some(
                    p.parse::<f64>()
                        .ok()
                        .filter(|p| *p > 0.0 && *p <= 10_000.0)
                        .ok_or("the size condition's percentage is a number above 0")?,
                ),
            };
            let bytes = match mb {
                "" => None,
                m => Some(
                    m.parse::<f64>()
                        .ok()
                        .filter(|m| *m > 0.0)
                        .map(|m| (m * 1024.0 * 1024.0).round() as u64)
                        .ok_or("the size condition's megabytes are a number above 0")?,
                ),
            };
            if percent.is_none() && bytes.is_none() {
                return Err("the size condition needs a percentage or megabytes".into());
            }
            when.push(Condition::Size { percent, bytes });
        }
        if self.when_schema {
            when.push(Condition::Schema);
        }
        config.when = when;
        config.skip_if_unchanged = false;
        config.min_size_change = 0;
        if own_project.is_some_and(|own| self.chain.iter().any(|c| c.id == own)) {
            return Err("the chain repeats the job's own project".into());
        }
        config.chain = self.chain.iter().map(|c| c.id.clone()).collect();
        config.chain_policy = if self.chain_stop {
            ChainPolicy::Stop
        } else {
            ChainPolicy::Continue
        };
        config.pre_hook = typed_hook(&self.pre_hook, &self.hook_timeout, self.hook_warn)?;
        config.post_hook = typed_hook(&self.post_hook, &self.hook_timeout, self.hook_warn)?;
        Ok(())
    }

    /// The three sections; `others` are the projects the chain may add.
    pub fn view<'a>(&'a self, others: Vec<ProjectChoice>) -> Element<'a, Message> {
        let mut when = column![
            text("Run only when, since the last successful backup").font(theme::BOLD),
            checkbox(self.when_changed)
                .label("rows were written")
                .on_toggle(Message::WhenChanged),
        ]
        .spacing(theme::XS);
        let mut size = row![
            checkbox(self.when_size)
                .label("the size grew or shrank by")
                .on_toggle(Message::WhenSize)
        ]
        .spacing(theme::S)
        .align_y(Alignment::Center);
        if self.when_size {
            size = size
                .push(
                    text_input("10", &self.size_percent)
                        .id(SIZE_PERCENT_ID)
                        .on_input(Message::SizePercent)
                        .padding(theme::XS)
                        .width(70),
                )
                .push(text("% or"))
                .push(
                    text_input("MB", &self.size_mb)
                        .id(SIZE_MB_ID)
                        .on_input(Message::SizeMb)
                        .padding(theme::XS)
                        .width(70),
                )
                .push(text("MB"));
        }
        when = when
            .push(size)
            .push(
                checkbox(self.when_schema)
                    .label("the schema changed")
                    .on_toggle(Message::WhenSchema),
            )
            .push(
                text("None ticked: every run backs up. Skips are recorded with their reason.")
                    .size(theme::SMALL)
                    .style(theme::muted),
            );

        let mut chain =
            column![text("Then back up, in order").font(theme::BOLD)].spacing(theme::XS);
        for (i, p) in self.chain.iter().enumerate() {
            chain = chain.push(
                row![
                    text(format!("{}. {}", i + 1, p.name)).width(Length::Fill),
                    button(text("↑").size(theme::SMALL))
                        .style(theme::secondary)
                        .padding([2.0, theme::S])
                        .on_press_maybe((i > 0).then_some(Message::ChainUp(i))),
                    button(text("Remove").size(theme::SMALL))
                        .style(theme::secondary)
                        .padding([2.0, theme::S])
                        .on_press(Message::ChainRemove(i)),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
        }
        let addable: Vec<ProjectChoice> = others
            .into_iter()
            .filter(|p| !self.chain.iter().any(|c| c.id == p.id))
            .collect();
        if !addable.is_empty() {
            chain = chain.push(
                pick_list(addable, None::<ProjectChoice>, Message::ChainAdd)
                    .placeholder("Add a project to the chain…")
                    .padding(theme::S),
            );
        }
        if !self.chain.is_empty() {
            chain = chain.push(
                toggler(self.chain_stop)
                    .label("Stop the chain at the first failed project")
                    .on_toggle(Message::ChainStop),
            );
        }

        let (commands, limits) = hook_inputs(HookFields {
            pre: &self.pre_hook,
            post: &self.post_hook,
            timeout: &self.hook_timeout,
            warn_only: self.hook_warn,
            ids: [PRE_HOOK_ID, POST_HOOK_ID, HOOK_TIMEOUT_ID],
            on_pre: Message::PreHook,
            on_post: Message::PostHook,
            on_timeout: Message::HookTimeout,
            on_warn: Message::HookWarn,
        });
        let hooks = column![text("Hooks").font(theme::BOLD), commands, limits].spacing(theme::XS);
        column![when, chain, hooks].spacing(theme::M).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> ProjectChoice {
        ProjectChoice {
            id: id.into(),
            name: id.to_uppercase(),
        }
    }

    #[test]
    fn options_round_trip_through_a_job_config_and_refuse_bad_input() {
        let mut o = Options::default();
        for m in [
            Message::WhenChanged(true),
            Message::WhenSize(true),
            Message::SizePercent("15%".into()),
            Message::SizeMb("2.5".into()),
            Message::WhenSchema(true),
            Message::ChainAdd(p("b")),
            Message::ChainAdd(p("c")),
            Message::ChainAdd(p("b")),
            Message::ChainUp(1),
            Message::ChainStop(true),
            Message::PreHook("echo pre".into()),
            Message::HookTimeout("45".into()),
            Message::HookWarn(true),
        ] {
            o.update(m);
        }
        let mut config = JobConfig {
            skip_if_unchanged: true,
            ..JobConfig::default()
        };
        o.apply(Some("a"), &mut config).expect("valid");
        assert_eq!(
            config.when,
            [
                Condition::Changed,
                Condition::Size {
                    percent: Some(15.0),
                    bytes: Some(2_621_440)
                },
                Condition::Schema
            ]
        );
        assert!(!config.skip_if_unchanged, "the older flag gives way");
        assert_eq!(config.chain, ["c", "b"], "added once, moved up");
        assert_eq!(config.chain_policy, ChainPolicy::Stop);
        let pre = config.pre_hook.clone().expect("pre-hook");
        assert_eq!((pre.timeout_secs, pre.on_failure), (45, HookPolicy::Warn));
        assert!(config.post_hook.is_none());
        let back = Options::from_config(&config, &[p("b"), p("c")]);
        assert_eq!(back.size_percent, "15");
        assert_eq!(back.size_mb, "2.5");
        assert_eq!(back.chain, [p("c"), p("b")]);
        assert!(back.when_changed && back.when_schema && back.chain_stop && back.hook_warn);

        let mut bad = o.clone();
        bad.update(Message::HookTimeout("0".into()));
        assert!(bad.apply(Some("a"), &mut config).is_err());
        let mut bad = o.clone();
        bad.update(Message::SizePercent(String::new()));
        bad.update(Message::SizeMb(String::new()));
        assert!(bad.apply(Some("a"), &mut config).is_err());
        assert!(
            o.apply(Some("b"), &mut config).is_err(),
            "chain repeats the project"
        );
        // The older skip-if-unchanged reads as "rows were written".
        let old = Options::from_config(
            &JobConfig {
                skip_if_unchanged: true,
                ..JobConfig::default()
            },
            &[],
        );
        assert!(old.when_changed && !old.when_size);
    }
}
