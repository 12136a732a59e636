//! For the models (`model_*.rs`) that restate lines of the sources: checks
//! that those lines are still there, whitespace aside, so that a change to
//! the sources sends its author back to the model.

/// `source` with every run of whitespace made one space.
pub fn norm(source: &str) -> String {
    source.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asserts that `source` (the text of `file`) still contains each of
/// `lines` (whitespace aside); returns it normalized, for order checks.
pub fn restated(file: &str, source: &str, lines: &[&str]) -> String {
    let text = norm(source);
    for line in lines {
        assert!(text.contains(&norm(line)), "{file} no longer contains: {line}");
    }
    text
}
