//! The long-tail figure: NDCG@10 (full ranking) per item-popularity bucket and per
//! user-history-length bucket, one bar per model, drawn as SVG with plotters.

use crate::eval::buckets::Buckets;
use crate::{Error, Result};
use plotters::prelude::*;

/// One model's two breakdowns.
pub struct Series {
    pub label: String,
    pub popularity: Buckets,
    pub length: Buckets,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(120, 120, 120),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

fn err(e: impl std::fmt::Display) -> Error {
    Error::format("the SVG figure", format!("could not be drawn: {e}"))
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[(&str, &Buckets)],
) -> Result<()> {
    let n = series.first().map_or(0, |s| s.1.labels.len());
    let top = series
        .iter()
        .flat_map(|s| s.1.ndcg10.iter().copied())
        .fold(0.0f64, f64::max)
        * 1.35; // headroom: the legend sits above the tallest bar
    let labels = series
        .first()
        .map(|s| s.1.labels.clone())
        .unwrap_or_default();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(56)
        // Bucket i is centred on x = i, where the mesh puts its integer labels.
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top.max(1e-3))
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("NDCG@10 (full ranking)")
        .draw()
        .map_err(err)?;
    let width = 0.8 / series.len().max(1) as f64;
    for (k, (label, b)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        chart
            .draw_series(b.ndcg10.iter().enumerate().map(|(i, v)| {
                let x0 = i as f64 - 0.4 + k as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, *v)], colour.filled())
            }))
            .map_err(err)?
            .label(label.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The two-panel SVG as a string (popularity buckets left, history-length buckets right).
pub fn svg(title: &str, series: &[Series]) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1100, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
        let (left, right) = root.split_horizontally(550);
        let pop: Vec<(&str, &Buckets)> = series
            .iter()
            .map(|s| (s.label.as_str(), &s.popularity))
            .collect();
        let len: Vec<(&str, &Buckets)> = series
            .iter()
            .map(|s| (s.label.as_str(), &s.length))
            .collect();
        panel(
            &left,
            "by target item popularity (training interactions)",
            &pop,
        )?;
        panel(&right, "by user history length (items)", &len)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_names_models_and_buckets() {
        let b = |v: f64| Buckets {
            axis: "x".into(),
            labels: vec!["1–5".into(), "6–9".into()],
            ndcg10: vec![v, 2.0 * v],
            users: vec![3, 3],
        };
        let s = svg(
            "t",
            &[
                Series {
                    label: "base".into(),
                    popularity: b(0.1),
                    length: b(0.2),
                },
                Series {
                    label: "llmesr".into(),
                    popularity: b(0.3),
                    length: b(0.1),
                },
            ],
        )
        .unwrap();
        assert!(s.starts_with("<svg") && s.contains("llmesr") && s.contains("6–9"));
    }
}
