//! restic's comma-separated tag lists (`--tag a,b`), split in one place for `tag`, backup's
//! `--tag`, snapshot filters and `--keep-tag`.

/// The tags of one comma-separated list, empty ones dropped (`"a,,b"` is `a`, `b`; `""` none).
pub fn tag_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|t| !t.is_empty())
}

/// Splits tag options as restic does: each value may hold several tags separated by commas;
/// empty ones are dropped.
pub fn split_tags(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|t| tag_list(t))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_on_commas_and_empty_ones_go() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split_tags(&v(&["a,b", "", "c,,d"])),
            v(&["a", "b", "c", "d"])
        );
        assert!(split_tags(&[]).is_empty());
    }
}
