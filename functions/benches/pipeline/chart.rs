//! The chart: an SVG with one panel per headline figure, a bar for each side at its median and a
//! whisker over the runs' lowest to highest value, the median ratio in the panel's title.

use plotters::{
    coord::ranged1d::SegmentValue,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use crate::report::{Summary, figure, median, spread};

/// orderflow's colour, and the baseline's.
const SIDES: [(&str, RGBColor); 2] =
    [("orderflow", RGBColor(0x2b, 0x6c, 0xb0)), ("baseline", RGBColor(0x9a, 0x9a, 0x9a))];

/// Draws the summaries that have a chart title into an SVG at `path`.
pub fn draw(summaries: &[Summary], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let charted: Vec<&Summary> = summaries.iter().filter(|s| s.chart.is_some() && !s.baseline.is_empty()).collect();
    if charted.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let columns = 4;
    let rows = charted.len().div_ceil(columns);
    let root = SVGBackend::new(path, (1200, 60 + 300 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "orderflow binary vs hand-written baseline (bars: medians; whiskers: lowest to highest run; ratio: median of the runs' ratios)",
        ("sans-serif", 16),
    )?;
    for (panel, summary) in root.split_evenly((rows, columns)).iter().zip(charted) {
        let values = [&summary.orderflow, &summary.baseline];
        let top = values.iter().map(|v| spread(v).1).fold(0.0, f64::max) * 1.2;
        let title = format!("{} (ratio {:.2})", summary.chart.unwrap_or_default(), summary.ratio().unwrap_or(f64::NAN));
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 13))
            .margin(10)
            .x_label_area_size(22)
            .y_label_area_size(48)
            .build_cartesian_2d((0..1).into_segmented(), 0.0..top.max(f64::MIN_POSITIVE))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .y_label_formatter(&|v| figure(*v))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    SIDES.get(*i as usize).map(|s| s.0.to_owned()).unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        for (i, (_, colour)) in SIDES.iter().enumerate() {
            let runs = values[i];
            let (at, (lo, hi)) = (median(runs), spread(runs));
            let i = i as i32;
            let mut bar =
                Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), at)], colour.filled());
            bar.set_margin(0, 0, 18, 18);
            chart.draw_series([bar])?;
            chart.draw_series([PathElement::new(
                vec![(SegmentValue::CenterOf(i), lo), (SegmentValue::CenterOf(i), hi)],
                BLACK.stroke_width(2),
            )])?;
            let label = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series([Text::new(figure(at), (SegmentValue::CenterOf(i), hi), label)])?;
        }
    }
    root.present()?;
    Ok(())
}
