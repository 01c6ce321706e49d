//! Small helpers below everything else: names of this host and its users, sizes, times, tag
//! lists.

mod digest;
mod names;
mod progress;
mod size;
mod tags;
mod time;

pub use digest::{DigestReader, StreamDigest};
pub use names::{group_name, hostname, user_name, username};
pub use progress::{Progress, ProgressReading};
pub use size::{parse_size, parse_size_in};
pub use tags::{split_tags, tag_list};
pub use time::{format_time, now_string, parse_instant, parse_time};
