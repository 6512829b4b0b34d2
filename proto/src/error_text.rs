//! One line for an error and its causes, for people and for other processes.

use std::error::Error;

/// `error` followed by each cause its message does not already contain. Errors here quote
/// their source in their own message (and `object_store`'s quote theirs again), so printing
/// every link of the chain, as `{:#}` does, repeats the same text two or three times.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(link) = cause {
        let said = link.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = link.source();
    }
    text
}

/// At most `limit` bytes of `text`, cut at a character boundary and marked when cut.
pub fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    const MARK: &str = " […]";
    let mut end = limit.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source, like thiserror's.
    #[derive(Debug)]
    struct Link(String, Option<Box<Link>>);

    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl Error for Link {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|link| link as &(dyn Error + 'static))
        }
    }

    fn chain(messages: &[&str]) -> Link {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Link(message.to_string(), source.map(Box::new)))
            })
            .expect("one message at least")
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_said_once() {
        let error = chain(&[
            "object store /data: root: /data: No such file",
            "root: /data: No such file",
            "No such file",
        ]);
        assert_eq!(
            describe(&error),
            "object store /data: root: /data: No such file"
        );
    }

    #[test]
    fn causes_the_message_does_not_quote_are_appended_in_order() {
        let error = chain(&[
            "loading the data",
            "reading labels.idx",
            "unexpected end of file",
        ]);
        assert_eq!(
            describe(&error),
            "loading the data: reading labels.idx: unexpected end of file"
        );
        let quoting_the_last_only =
            chain(&["opening x: disk full", "permission denied", "disk full"]);
        assert_eq!(
            describe(&quoting_the_last_only),
            "opening x: disk full: permission denied"
        );
    }

    #[test]
    fn truncation_keeps_short_text_and_cuts_long_text_at_a_character() {
        assert_eq!(truncated("short", 16), "short");
        let cut = truncated("ééééééééé", 9);
        assert!(cut.len() <= 9, "{cut}");
        assert!(cut.ends_with(" […]"), "{cut}");
        assert!(cut.starts_with('é'), "{cut}");
        assert_eq!(truncated("abcdefghij", 10), "abcdefghij");
        assert_eq!(truncated("abcdefghijk", 10), "abcd […]");
    }
}
