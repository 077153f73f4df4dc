//! The picture: per mode, live sessions per replica over time (left) and
//! reconnects per 100 ms (right), with the SIGTERMs marked.

use std::{collections::BTreeMap, error::Error, path::Path};

use plotters::prelude::*;

use crate::report::{BIN, ModeReport};

/// Writes an SVG with one row of two panels per mode.
pub(crate) fn write_svg(path: &Path, modes: &[ModeReport], lb: &str) -> Result<(), Box<dyn Error>> {
    let rows = modes.len().max(1);
    let root = SVGBackend::new(path, (1400, 420 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let end = modes
        .iter()
        .flat_map(|m| {
            m.sessions
                .samples
                .last()
                .map(|s| s.0)
                .into_iter()
                .chain(m.reconnects.iter().map(|(_, r)| *r))
        })
        .fold(1.0_f64, f64::max);
    let panels = root.split_evenly((rows, 2));
    for (m, pair) in modes.iter().zip(panels.chunks(2)) {
        sessions_panel(&pair[0], m, lb, end)?;
        reconnects_panel(&pair[1], m, end)?;
    }
    root.present()?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn sessions_panel(
    area: &Area<'_>,
    m: &ModeReport,
    lb: &str,
    end: f64,
) -> Result<(), Box<dyn Error>> {
    let top = (m.sessions.peak() as f64 * 1.1).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: live sessions per replica ({lb})", m.mode),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the rollout began")
        .y_desc("sessions")
        .draw()?;
    for (i, id) in m.sessions.replicas().into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                m.sessions
                    .series(id)
                    .into_iter()
                    .map(|(t, n)| (t, n as f64)),
                color.stroke_width(2),
            ))?
            .label(format!("replica {id}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    for &s in &m.sigterms {
        chart.draw_series(LineSeries::new(vec![(s, 0.0), (s, top)], BLACK.mix(0.3)))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

fn reconnects_panel(area: &Area<'_>, m: &ModeReport, end: f64) -> Result<(), Box<dyn Error>> {
    let mut bins: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, r) in &m.reconnects {
        *bins.entry((r / BIN).floor() as i64).or_default() += 1;
    }
    let top = (m.reconnect_peak as f64 * 1.1).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: reconnects per 100 ms (peak {}, mean {:.1}; worst drain {:.2})",
                m.mode,
                m.reconnect_peak,
                m.reconnect_mean,
                m.worst_drain_peak_to_mean()
            ),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the rollout began")
        .y_desc("reconnects")
        .draw()?;
    // A step line: each bin is a flat segment at its count.
    let last = (end / BIN).ceil() as i64;
    let mut points = Vec::new();
    for b in 0..=last {
        let n = bins.get(&b).copied().unwrap_or(0) as f64;
        let x = b as f64 * BIN;
        points.push((x, n));
        points.push((x + BIN, n));
    }
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(1)))?;
    for &s in &m.sigterms {
        chart.draw_series(LineSeries::new(vec![(s, 0.0), (s, top)], BLACK.mix(0.3)))?;
    }
    Ok(())
}
