//! `--plot FILE.svg` / `--plot FILE.png` (the extension picks): per
//! workload one image of two charts side by side, throughput (req/s) and
//! p99 latency against connections (open loop: against the rate), on a
//! logarithmic x axis, one line per worker class with its own color and
//! marker, and a legend. With several workloads, one file each:
//! `FILE-WORKLOAD.svg`. Text is laid out with ab_glyph from DejaVu Sans,
//! embedded (the `dejavu` crate), so no system font library is needed;
//! the SVG names the family `sans-serif` and leaves drawing it to the
//! viewer.

use std::fs;
use std::io::BufWriter;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::output::OutputError;
use crate::report::{Report, Run};
use crate::table::{rps, workloads};

/// Every image's size, pixels: two 600 x 450 charts side by side.
pub const SIZE: (u32, u32) = (1200, 450);

/// One color per class, in the order the classes ran.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The image formats `--plot` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    Svg,
    Png,
}

impl Image {
    /// The format `path`'s extension names.
    pub fn of(path: &Path) -> Result<Image, OutputError> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("svg") => Ok(Image::Svg),
            Some("png") => Ok(Image::Png),
            _ => Err(OutputError::PlotExtension {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Draws `report`'s charts to `path` (or, with several workloads, to
/// `path` with `-WORKLOAD` before the extension). Returns the files written.
pub fn plot(report: &Report, path: &Path) -> Result<Vec<PathBuf>, OutputError> {
    let image = Image::of(path)?;
    register_font();
    let names = workloads(report);
    let mut written = Vec::new();
    for workload in &names {
        let runs: Vec<&Run> = report
            .runs
            .iter()
            .filter(|run| &run.workload == workload && run.requests > 0)
            .collect();
        if runs.is_empty() {
            continue;
        }
        let file = if names.len() == 1 {
            path.to_path_buf()
        } else {
            per_workload(path, workload)
        };
        let failed = |reason: String| OutputError::Plot {
            path: file.clone(),
            reason,
        };
        match image {
            Image::Svg => {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
                    draw(&root, workload, &runs).map_err(|err| failed(err.to_string()))?;
                    root.present().map_err(|err| failed(err.to_string()))?;
                }
                fs::write(&file, svg).map_err(|err| failed(err.to_string()))?;
            }
            Image::Png => {
                let (width, height) = SIZE;
                let mut pixels = vec![0u8; width as usize * height as usize * 3];
                {
                    let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
                    draw(&root, workload, &runs).map_err(|err| failed(err.to_string()))?;
                    root.present().map_err(|err| failed(err.to_string()))?;
                }
                let writer =
                    BufWriter::new(fs::File::create(&file).map_err(|err| failed(err.to_string()))?);
                let mut encoder = png::Encoder::new(writer, width, height);
                encoder.set_color(png::ColorType::Rgb);
                encoder.set_depth(png::BitDepth::Eight);
                encoder
                    .write_header()
                    .and_then(|mut writer| writer.write_image_data(&pixels))
                    .map_err(|err| failed(err.to_string()))?;
            }
        }
        written.push(file);
    }
    Ok(written)
}

/// `charts.svg` and `io` → `charts-io.svg`.
fn per_workload(path: &Path, workload: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("plot");
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .unwrap_or("");
    path.with_file_name(format!("{stem}-{workload}.{extension}"))
}

/// ab_glyph draws only fonts registered by name: DejaVu Sans as the
/// `sans-serif` family every label uses.
fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is a well-formed TTF shipped by the crate: a failure
        // here would be the crate's bug, and plotting would then fail with
        // "FontUnavailable", named by the error of the first label.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// One class's points: (x, req/s, p99 in ms), sorted by x.
struct Series<'a> {
    class: &'a str,
    points: Vec<(f64, f64, f64)>,
}

fn series<'a>(runs: &[&'a Run]) -> Vec<Series<'a>> {
    let mut all: Vec<Series<'a>> = Vec::new();
    for run in runs {
        let x = run.rate.unwrap_or(f64::from(run.connections));
        if x <= 0.0 {
            continue;
        }
        let point = (x, run.rps, run.latency.p99 as f64 / 1000.0);
        match all.iter_mut().find(|series| series.class == run.class) {
            Some(series) => series.points.push(point),
            None => all.push(Series {
                class: &run.class,
                points: vec![point],
            }),
        }
    }
    for series in &mut all {
        series.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    all
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    workload: &str,
    runs: &[&Run],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let all = series(runs);
    let open = runs.iter().any(|run| run.rate.is_some());
    let x_label = if open {
        "rate (req/s, log scale)"
    } else {
        "connections (log scale)"
    };
    let xs = all
        .iter()
        .flat_map(|series| series.points.iter().map(|point| point.0));
    let x_range = log_range(
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.clone().fold(0.0, f64::max),
    );
    // The x labels and grid are the levels measured (1, 16, 64, 256).
    let mut levels: Vec<f64> = xs.collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    let request = runs.first().map(|run| run.request.as_str()).unwrap_or("");
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let charts = [
        (
            left,
            format!("{workload}: throughput ({request})"),
            "req/s",
            1,
        ),
        (right, format!("{workload}: p99 latency"), "p99 (ms)", 2),
    ];
    for (area, title, y_label, field) in charts {
        let value = |point: &(f64, f64, f64)| if field == 1 { point.1 } else { point.2 };
        let y_max = all
            .iter()
            .flat_map(|series| series.points.iter().map(value))
            .fold(0.0_f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                x_range.clone().log_scale().with_key_points(levels.clone()),
                0.0..y_max,
            )?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| label(*x))
            .y_label_formatter(&|y| label(*y))
            .max_light_lines(1)
            .label_style(("sans-serif", 13))
            .draw()?;
        for (index, series) in all.iter().enumerate() {
            let color = COLORS[index % COLORS.len()];
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .map(|point| (point.0, value(point)))
                .collect();
            let line = chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
            line.label(series.class);
            // One marker shape per class, on the points and in the legend.
            let filled = color.filled();
            match index % 4 {
                0 => {
                    line.legend(move |(x, y)| {
                        EmptyElement::at((x + 10, y)) + Circle::new((0, 0), 4, filled)
                    });
                    chart.draw_series(
                        points
                            .iter()
                            .map(|&at| EmptyElement::at(at) + Circle::new((0, 0), 4, filled)),
                    )?;
                }
                1 => {
                    line.legend(move |(x, y)| {
                        EmptyElement::at((x + 10, y)) + TriangleMarker::new((0, 0), 5, filled)
                    });
                    chart.draw_series(points.iter().map(|&at| {
                        EmptyElement::at(at) + TriangleMarker::new((0, 0), 5, filled)
                    }))?;
                }
                2 => {
                    let stroke = color.stroke_width(2);
                    line.legend(move |(x, y)| {
                        EmptyElement::at((x + 10, y)) + Cross::new((0, 0), 4, stroke)
                    });
                    chart.draw_series(
                        points
                            .iter()
                            .map(|&at| EmptyElement::at(at) + Cross::new((0, 0), 4, stroke)),
                    )?;
                }
                _ => {
                    line.legend(move |(x, y)| {
                        EmptyElement::at((x + 10, y)) + Rectangle::new([(-4, -4), (4, 4)], filled)
                    });
                    chart.draw_series(points.iter().map(|&at| {
                        EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], filled)
                    }))?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    Ok(())
}

/// An axis label: whole numbers without decimals (`16`, `2500`).
fn label(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        rps(value)
    }
}

/// A range for a log axis holding `min..max`, widened when it is one point.
fn log_range(min: f64, max: f64) -> Range<f64> {
    if !min.is_finite() || max <= 0.0 {
        return 1.0..10.0;
    }
    if min >= max {
        return min / 2.0..max * 2.0;
    }
    min / 1.2..max * 1.2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    /// Two workloads, four classes (every marker), one open-loop run.
    fn report() -> Report {
        let mut report = fixture::io_bound(20, 2_000.0);
        for (index, class) in ["green", "async"].into_iter().enumerate() {
            for &connections in &[1u32, 16, 64] {
                let rps = f64::from(connections) * 40.0 + index as f64;
                report.runs.push(fixture::run(
                    "io",
                    class,
                    connections,
                    rps,
                    20_500,
                    30_000,
                    900.0,
                ));
            }
        }
        let mut open = fixture::run("hello", "sync", 4, 1_000.0, 300, 900, 50.0);
        open.rate = Some(1_000.0);
        report.runs.push(open);
        report
    }

    #[test]
    fn svg_names_every_class() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = report();
        report.runs.retain(|run| run.workload == "io");
        let path = dir.path().join("charts.svg");
        let written = plot(&report, &path).unwrap();
        assert_eq!(written, std::slice::from_ref(&path));
        let svg = fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        for text in [
            "sync",
            "gthread",
            "green",
            "async",
            "io: throughput (GET /?ms=50)",
            "io: p99 latency",
            "connections (log scale)",
            "p99 (ms)",
        ] {
            // plotters writes each text on a line of its own inside <text>.
            assert!(
                svg.contains(&format!(">\n{text}\n</text>")),
                "{text:?} not in the SVG"
            );
        }
    }

    #[test]
    fn png_has_the_size_and_one_file_per_workload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("charts.PNG");
        let written = plot(&report(), &path).unwrap();
        assert_eq!(
            written,
            [
                dir.path().join("charts-io.PNG"),
                dir.path().join("charts-hello.PNG")
            ]
        );
        for file in &written {
            let bytes = fs::read(file).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            // IHDR: width and height, big-endian, after the chunk's length and type.
            assert_eq!(&bytes[12..16], b"IHDR");
            let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
            let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
            assert_eq!((width, height), SIZE);
            // Something was drawn: not one color.
            let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
            let mut reader = decoder.read_info().unwrap();
            let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
            reader.next_frame(&mut pixels).unwrap();
            let distinct: std::collections::BTreeSet<&[u8]> = pixels.chunks(3).collect();
            assert!(distinct.len() > 10, "{} colors", distinct.len());
        }
        // The open-loop workload's x axis is the rate.
        let svg_path = dir.path().join("hello.svg");
        let mut hello = report();
        hello.runs.retain(|run| run.workload == "hello");
        plot(&hello, &svg_path).unwrap();
        assert!(fs::read_to_string(&svg_path)
            .unwrap()
            .contains(">\nrate (req/s, log scale)\n</text>"));
    }

    #[test]
    fn bad_paths_are_named() {
        let err = plot(&report(), Path::new("charts.jpg"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot plot to charts.jpg: unknown extension, use FILE.svg or FILE.png"
        );
        let err = plot(&report(), Path::new("charts"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("use FILE.svg or FILE.png"), "{err}");
        let err = plot(&report(), Path::new("/nonexistent/dir/charts.svg"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot plot to /nonexistent/dir/charts-io.svg: "),
            "{err}"
        );
        assert!(
            err.ends_with("(check that the directory exists and is writable)"),
            "{err}"
        );
    }

    #[test]
    fn no_served_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let zero = fixture::run("io", "sync", 1, 0.0, 0, 0, 0.0);
        let written = plot(&fixture::report(vec![zero]), &dir.path().join("x.svg")).unwrap();
        assert!(written.is_empty());
    }
}
