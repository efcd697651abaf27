//! Durations written the way a user would type them, for messages.

use std::time::Duration;

/// Formats a duration the way it would be typed, for messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        if ms > 1000 {
            format!("{:.1}s", d.as_secs_f64())
        } else {
            format!("{ms}ms")
        }
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_millis(6_700)), "6.7s");
    }
}
