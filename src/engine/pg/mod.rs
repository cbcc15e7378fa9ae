//! PostgreSQL: connections (tokio-postgres over rustls with libpq's sslmode
//! meanings), the machine's client tools, and the connection test.

pub mod archive;
pub mod authguard;
pub mod connect;
pub mod pgpass;
pub mod probe;
pub mod tls;
pub mod tools;
