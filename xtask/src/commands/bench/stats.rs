//! Samples of durations and their medians (pure, no engine).

use std::time::Duration;

/// Durations measured the same way, in the order they were taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new() -> Self {
        Samples(Vec::new())
    }

    pub fn push(&mut self, value: Duration) {
        self.0.push(value);
    }

    pub fn extend(&mut self, values: impl IntoIterator<Item = Duration>) {
        self.0.extend(values);
    }

    pub fn values(&self) -> &[Duration] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The median in seconds: the middle value, or the mean of the two
    /// middle ones; `None` when there are no samples.
    pub fn median(&self) -> Option<f64> {
        median(&self.0.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
    }
}

impl FromIterator<Duration> for Samples {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        Samples(iter.into_iter().collect())
    }
}

/// The median of `values`; `None` when empty. NaNs sort last and so only
/// count when they are the middle.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn median_of_nothing_is_none() {
        assert_eq!(median(&[]), None);
        assert_eq!(Samples::new().median(), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn median_ignores_one_outlier() {
        let samples: Samples = [ms(100), ms(9000), ms(110), ms(90), ms(105)]
            .into_iter()
            .collect();
        assert_eq!(samples.len(), 5);
        let m = samples.median().unwrap();
        assert!((m - 0.105).abs() < 1e-9, "{m}");
    }

    #[test]
    fn samples_grow() {
        let mut s = Samples::new();
        assert_eq!(s.len(), 0);
        s.push(ms(1));
        s.extend([ms(2), ms(3)]);
        assert_eq!(s.len(), 3);
        assert!((s.median().unwrap() - 0.002).abs() < 1e-9);
    }
}
