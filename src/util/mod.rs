//! Small helpers below everything else: names of this host and its users, time formats.

mod names;
mod time;

pub use names::{group_name, hostname, user_name, username};
pub use time::{format_time, now_string, parse_time};
