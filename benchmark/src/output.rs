//! What `runicorn bench` shows: the report as a table, JSON or CSV on
//! stdout, the charts (`--plot`), and the comparison with a baseline
//! (`--compare`), after the table, or on stderr when stdout is JSON or
//! CSV, so that stdout stays one parseable document.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::report::{Report, FORMAT};
use crate::{compare, plot, table};

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl FromStr for Format {
    type Err = OutputError;

    fn from_str(name: &str) -> Result<Format, OutputError> {
        match name {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(OutputError::UnknownFormat(other.to_string())),
        }
    }
}

/// Everything the command line says about output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputOptions {
    pub format: Format,
    /// `--plot FILE.svg|FILE.png`, repeatable.
    pub plots: Vec<PathBuf>,
    /// `--compare FILE.json`.
    pub compare: Option<PathBuf>,
    /// `--threshold`: the percentage past which a change is a regression.
    pub threshold_pct: f64,
}

/// Why the output could not be made: one line naming the problem and
/// the fix.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("unknown output format {0:?}: use table, json or csv")]
    UnknownFormat(String),
    #[error("cannot write the report: {0} (is stdout closed?)")]
    Write(#[from] io::Error),
    #[error("cannot write the CSV: {0} (is stdout closed?)")]
    Csv(#[from] ::csv::Error),
    #[error("cannot write the JSON: {0} (is stdout closed?)")]
    Json(#[from] serde_json::Error),
    #[error("cannot read {path}: {source} (give the path of a report saved with --output json)")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a runicorn bench report: {reason} (save one with `runicorn bench --output json > FILE.json`)")]
    NotAReport { path: PathBuf, reason: String },
    #[error(
        "{path} is a report of format {found}, this runicorn reads format {expected}: \
         run the benchmark again to make a new baseline"
    )]
    FormatVersion {
        path: PathBuf,
        found: u64,
        expected: u32,
    },
    #[error("cannot plot to {path}: unknown extension, use FILE.svg or FILE.png")]
    PlotExtension { path: PathBuf },
    #[error("cannot plot to {path}: {reason} (check that the directory exists and is writable)")]
    Plot { path: PathBuf, reason: String },
}

impl OutputError {
    /// The reader of stdout went away (`runicorn bench ... | head`): not
    /// an error to report, as for any Unix filter.
    pub fn is_broken_pipe(&self) -> bool {
        let kind = match self {
            OutputError::Write(err) => Some(err.kind()),
            OutputError::Csv(err) => match err.kind() {
                ::csv::ErrorKind::Io(err) => Some(err.kind()),
                _ => None,
            },
            OutputError::Json(err) => err.io_error_kind(),
            _ => None,
        };
        kind == Some(io::ErrorKind::BrokenPipe)
    }
}

/// Writes the report to `out` in `format`, the plots, and the comparison
/// (to `out` after the table; to stderr when format is json/csv). Returns
/// how many regressions were flagged. A bad `--plot` extension or
/// `--compare` file is found before anything is written.
pub fn emit(
    report: &Report,
    options: &OutputOptions,
    out: &mut dyn Write,
) -> Result<usize, OutputError> {
    for path in &options.plots {
        plot::Image::of(path)?;
    }
    let baseline = match &options.compare {
        Some(path) => Some((path, read_report(path)?)),
        None => None,
    };
    match options.format {
        Format::Table => table::write(report, out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)?;
        }
        Format::Csv => crate::csv::write(report, out)?,
    }
    for path in &options.plots {
        let written = plot::plot(report, path)?;
        let line = if written.is_empty() {
            format!(
                "no chart written to {}: no run completed a request",
                path.display()
            )
        } else {
            let names: Vec<String> = written
                .iter()
                .map(|path| path.display().to_string())
                .collect();
            format!("charts: {}", names.join(", "))
        };
        if options.format == Format::Table {
            writeln!(out, "\n{line}")?;
        } else {
            eprintln!("{line}");
        }
    }
    let mut regressions = 0;
    if let Some((path, baseline)) = baseline {
        let comparison = compare::compare(&baseline, report, options.threshold_pct);
        regressions = comparison.regressions();
        let name = path.display().to_string();
        if options.format == Format::Table {
            writeln!(out)?;
            comparison.write(&name, out)?;
        } else {
            comparison.write(&name, &mut io::stderr().lock())?;
        }
    }
    out.flush()?;
    Ok(regressions)
}

/// Reads a report saved with `--output json` (`--compare`, `--from`).
pub fn read_report(path: &Path) -> Result<Report, OutputError> {
    let bytes = fs::read(path).map_err(|source| OutputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let not_a_report = |reason: String| OutputError::NotAReport {
        path: path.to_path_buf(),
        reason,
    };
    // The version first: a report of another format may not parse as this one.
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|err| not_a_report(err.to_string()))?;
    let found = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| not_a_report("no \"format\" field".to_string()))?;
    if found != u64::from(FORMAT) {
        return Err(OutputError::FormatVersion {
            path: path.to_path_buf(),
            found,
            expected: FORMAT,
        });
    }
    serde_json::from_value(value).map_err(|err| not_a_report(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn options(format: Format) -> OutputOptions {
        OutputOptions {
            format,
            plots: Vec::new(),
            compare: None,
            threshold_pct: 10.0,
        }
    }

    fn emit_to_string(
        report: &Report,
        options: &OutputOptions,
    ) -> Result<(usize, String), OutputError> {
        let mut out = Vec::new();
        let count = emit(report, options, &mut out)?;
        Ok((count, String::from_utf8(out).unwrap()))
    }

    #[test]
    fn formats_by_name() {
        assert_eq!("table".parse::<Format>().unwrap(), Format::Table);
        assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
        assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
        let err = "xml".parse::<Format>().unwrap_err().to_string();
        assert_eq!(err, "unknown output format \"xml\": use table, json or csv");
    }

    #[test]
    fn json_round_trips_through_read_report() {
        let report = fixture::io_bound(20, 2_000.0);
        let (count, text) = emit_to_string(&report, &options(Format::Json)).unwrap();
        assert_eq!(count, 0);
        assert!(text.starts_with("{\n  \"format\": 1,"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.json");
        fs::write(&path, &text).unwrap();
        assert_eq!(read_report(&path).unwrap(), report);
    }

    #[test]
    fn table_and_csv_dispatch() {
        let report = fixture::cpu_bound();
        let (_, table) = emit_to_string(&report, &options(Format::Table)).unwrap();
        assert!(table.contains("== cpu: builtin:cpu"), "{table}");
        let (_, csv) = emit_to_string(&report, &options(Format::Csv)).unwrap();
        assert!(csv.starts_with("workload,app,"), "{csv}");
    }

    #[test]
    fn compare_counts_regressions_after_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.json");
        let baseline = fixture::io_bound(20, 2_000.0);
        fs::write(&base, serde_json::to_string(&baseline).unwrap()).unwrap();
        let mut new = baseline.clone();
        new.runs[3].rps /= 2.0;
        let mut options = options(Format::Table);
        options.compare = Some(base.clone());
        let (count, text) = emit_to_string(&new, &options).unwrap();
        assert_eq!(count, 1);
        let table_end = text.find("compared with").unwrap();
        assert!(text[..table_end].contains("== io:"), "{text}");
        assert!(text.contains("io gthread c=16"), "{text}");
        assert!(
            text.ends_with(&format!("1 regression against {}\n", base.display())),
            "{text}"
        );
        // JSON stays one document: the comparison goes to stderr.
        options.format = Format::Json;
        let (count, text) = emit_to_string(&new, &options).unwrap();
        assert_eq!(count, 1);
        assert!(!text.contains("regression"), "{text}");
        serde_json::from_str::<Report>(&text).unwrap();
    }

    #[test]
    fn bad_baselines_are_named_before_any_output() {
        let dir = tempfile::tempdir().unwrap();
        let report = fixture::cpu_bound();
        let check = |content: Option<&str>, expected: &str| {
            let path = dir.path().join("base.json");
            match content {
                Some(content) => fs::write(&path, content).unwrap(),
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
            let mut options = options(Format::Table);
            options.compare = Some(path.clone());
            let mut out = Vec::new();
            let err = emit(&report, &options, &mut out).unwrap_err().to_string();
            assert!(
                out.is_empty(),
                "wrote before failing: {}",
                String::from_utf8_lossy(&out)
            );
            assert!(
                err.starts_with(&path.display().to_string())
                    || err.contains(&path.display().to_string()),
                "{err}"
            );
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains('\n'), "{err}");
        };
        check(None, "give the path of a report saved with --output json");
        check(Some("name,rps\n"), "is not a runicorn bench report");
        check(Some("{\"hello\": 1}"), "no \"format\" field");
        check(
            Some("{\"format\": 1, \"runs\": []}"),
            "is not a runicorn bench report: missing field",
        );
        check(
            Some("{\"format\": 99}"),
            "is a report of format 99, this runicorn reads format 1: run the benchmark again",
        );
    }

    #[test]
    fn charts_are_named_after_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = options(Format::Table);
        options.plots = vec![dir.path().join("a.svg"), dir.path().join("b.png")];
        let (_, text) = emit_to_string(&fixture::cpu_bound(), &options).unwrap();
        let svg = dir.path().join("a.svg");
        let png = dir.path().join("b.png");
        assert!(
            text.contains(&format!("\ncharts: {}\n", svg.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("\ncharts: {}\n", png.display())),
            "{text}"
        );
        assert!(svg.exists() && png.exists());
        // Nothing to draw: said, not silently skipped.
        let zero = fixture::run("io", "sync", 1, 0.0, 0, 0, 0.0);
        let (_, text) = emit_to_string(&fixture::report(vec![zero]), &options).unwrap();
        let said = format!(
            "no chart written to {}: no run completed a request",
            svg.display()
        );
        assert!(text.contains(&said), "{text}");
    }

    #[test]
    fn unknown_plot_extension_named_before_any_output() {
        let mut options = options(Format::Table);
        options.plots = vec![PathBuf::from("chart.pdf")];
        let mut out = Vec::new();
        let err = emit(&fixture::cpu_bound(), &options, &mut out)
            .unwrap_err()
            .to_string();
        assert!(out.is_empty());
        assert_eq!(
            err,
            "cannot plot to chart.pdf: unknown extension, use FILE.svg or FILE.png"
        );
    }
}
