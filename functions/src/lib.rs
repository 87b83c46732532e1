//! orderflow's functions and the process that hosts them: the HTTP functions, the queue
//! functions (`on_<event>`), the cron function (`expire_orders`), all registered in
//! [`registry`], and the `orderflow` binary's process: built in [`app`], run in [`supervisor`].

pub mod accounts;
pub mod app;
pub mod board;
pub mod cli;
pub mod credentials;
pub mod dead_letters;
pub mod deps;
pub mod dlq;
pub mod error;
pub mod expire_orders;
pub mod http;
pub mod on_order_completed;
pub mod on_order_created;
pub mod on_order_expired;
pub mod registry;
pub mod server;
pub mod supervisor;
pub mod users;
