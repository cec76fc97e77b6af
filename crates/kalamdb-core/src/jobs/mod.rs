//! Background jobs. The manager never knows what a row is: a job kind is a [`manager::Job`]
//! (today [`flush_job::FlushJob`]); its row in system.jobs is a [`record::JobRecord`]; the
//! [`scheduler`] starts policy flushes, purges expired stream rows and prunes old jobs.

pub mod flush_job;
pub mod manager;
pub mod record;
pub mod scheduler;
