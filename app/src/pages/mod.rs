//! The pages.

pub mod account;
pub mod images;
pub mod workers;
pub mod write;

/// "2 min", "45 s".
pub fn duration(seconds: i64) -> String {
    match seconds {
        s if s >= 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{} s", s.max(0)),
    }
}

/// Kudos with at most one decimal.
pub fn kudos(k: f64) -> String {
    let rounded = (k * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_read_naturally() {
        assert_eq!(super::duration(45), "45 s");
        assert_eq!(super::duration(150), "2 min");
        assert_eq!(super::duration(7260), "2 h 1 min");
        assert_eq!(super::kudos(12.0), "12");
        assert_eq!(super::kudos(3.04), "3");
        assert_eq!(super::kudos(3.25), "3.3");
    }
}
