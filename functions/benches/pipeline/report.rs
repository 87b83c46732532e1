//! The report: a row per metric with its target, a scenario's repeated runs reduced to the
//! median of each side and of their ratios with the spread, and the Markdown table the benchmark
//! prints.

use std::{fmt::Write as _, time::Duration};

/// One measured metric of one run of a scenario, both sides.
pub struct Row {
    /// The scenario's number and name.
    pub scenario: &'static str,
    /// What was measured, in words and unit.
    pub metric: String,
    /// orderflow's value.
    pub orderflow: f64,
    /// The baseline's value, where there is a baseline.
    pub baseline: Option<f64>,
    /// The target the value is held to.
    pub rule: Rule,
    /// The title of its panel in the chart, if it has one.
    pub chart: Option<&'static str>,
}

/// A target.
#[derive(Clone, Copy)]
pub enum Rule {
    /// For information only.
    None,
    /// orderflow ≥ x × baseline.
    RatioAtLeast(f64),
    /// orderflow ≤ x × baseline.
    RatioAtMost(f64),
    /// orderflow < x (absolute).
    Below(f64, &'static str),
}

/// One metric over every run of its scenario.
pub struct Summary {
    /// As in [`Row`].
    pub scenario: &'static str,
    /// As in [`Row`].
    pub metric: String,
    /// orderflow's value in each run.
    pub orderflow: Vec<f64>,
    /// The baseline's value in each run (empty where there is none).
    pub baseline: Vec<f64>,
    /// As in [`Row`].
    pub rule: Rule,
    /// As in [`Row`].
    pub chart: Option<&'static str>,
}

/// The median of `values` (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// The smallest and largest of `values`.
pub fn spread(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

impl Summary {
    /// orderflow ÷ baseline in each run.
    fn ratios(&self) -> Vec<f64> {
        self.orderflow.iter().zip(&self.baseline).map(|(o, b)| o / b).collect()
    }

    /// The median of the runs' ratios, where there is a baseline.
    pub fn ratio(&self) -> Option<f64> {
        (!self.baseline.is_empty()).then(|| median(&self.ratios()))
    }

    /// The target in words, for the table.
    fn target(&self) -> String {
        match self.rule {
            Rule::None => "-".into(),
            Rule::RatioAtLeast(x) => format!("≥ {x} × baseline"),
            Rule::RatioAtMost(x) => format!("≤ {x} × baseline"),
            Rule::Below(x, unit) => format!("< {x} {unit}"),
        }
    }

    /// Whether the median meets the target; `None` where there is none (or no baseline).
    pub fn pass(&self) -> Option<bool> {
        match (self.rule, self.ratio()) {
            (Rule::None, _) => None,
            (Rule::RatioAtLeast(x), Some(r)) => Some(r >= x),
            (Rule::RatioAtMost(x), Some(r)) => Some(r <= x),
            (Rule::Below(x, _), _) => Some(median(&self.orderflow) < x),
            _ => None,
        }
    }
}

/// Runs a scenario `repeats` times and gathers each metric's values over the runs.
pub async fn repeated(name: &str, repeats: usize, scenario: impl AsyncFn(&mut Vec<Row>)) -> Vec<Summary> {
    let mut runs = Vec::new();
    for run in 1..=repeats {
        eprintln!("scenario {name} (run {run} of {repeats})");
        let mut rows = Vec::new();
        scenario(&mut rows).await;
        runs.push(rows);
    }
    gather(runs)
}

/// Each metric's values over the runs (every run reports the same metrics in the same order).
fn gather(runs: Vec<Vec<Row>>) -> Vec<Summary> {
    let mut runs = runs.into_iter();
    let mut summaries: Vec<Summary> = runs
        .next()
        .unwrap_or_default()
        .into_iter()
        .map(|row| Summary {
            scenario: row.scenario,
            metric: row.metric,
            orderflow: vec![row.orderflow],
            baseline: row.baseline.into_iter().collect(),
            rule: row.rule,
            chart: row.chart,
        })
        .collect();
    for run in runs {
        for (summary, row) in summaries.iter_mut().zip(run) {
            summary.orderflow.push(row.orderflow);
            summary.baseline.extend(row.baseline);
        }
    }
    summaries
}

/// A figure with as many decimals as it needs.
pub fn figure(v: f64) -> String {
    if v < 10.0 { format!("{v:.2}") } else { format!("{v:.1}") }
}

/// The Markdown table of `summaries`, and the benchmark's total time below it.
pub fn print_table(summaries: &[Summary], repeats: usize, total: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | metric | orderflow | baseline | orderflow ÷ baseline (median of the runs' ratios) | spread of the ratio | target | met |\n\
         |---|---|---:|---:|---:|---|---|---|"
    );
    for s in summaries {
        let (lo, hi) = spread(&s.ratios());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.scenario,
            s.metric,
            figure(median(&s.orderflow)),
            if s.baseline.is_empty() { "-".into() } else { figure(median(&s.baseline)) },
            s.ratio().map_or_else(|| "-".into(), |r| format!("{r:.2}")),
            if s.baseline.is_empty() { "-".into() } else { format!("{lo:.2}–{hi:.2}") },
            s.target(),
            match s.pass() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
    let _ = writeln!(
        out,
        "\nMedians of {repeats} runs; the spread is the lowest and highest ratio of the runs. \
         Total benchmark time: {:.0} s",
        total.as_secs_f64()
    );
    out
}
