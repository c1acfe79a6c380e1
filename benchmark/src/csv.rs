//! `--output csv`: one row per run under a header row, every field of a
//! [`Run`] flattened (`latency_p50_us`, ...; a status or error kind is a
//! column when any run has it: `status_200`, `errors_timeout`, with
//! `errors_total` always there). Quoting is RFC 4180's, done by the `csv`
//! crate.

use std::collections::BTreeSet;
use std::io::Write;

use crate::report::{Report, Run};

/// How a run fills a column.
type Cell = fn(&Run) -> String;

/// The columns before the statuses and errors, each with how a run fills it.
const FIXED: &[(&str, Cell)] = &[
    ("workload", |run| run.workload.clone()),
    ("app", |run| run.app.clone()),
    ("request", |run| run.request.clone()),
    ("class", |run| run.class.clone()),
    ("connections", |run| run.connections.to_string()),
    ("rate", |run| {
        run.rate.map(|rate| rate.to_string()).unwrap_or_default()
    }),
    ("requests", |run| run.requests.to_string()),
    ("duration_s", |run| run.duration_s.to_string()),
    ("rps", |run| run.rps.to_string()),
    ("latency_mean_us", |run| run.latency.mean.to_string()),
    ("latency_p50_us", |run| run.latency.p50.to_string()),
    ("latency_p90_us", |run| run.latency.p90.to_string()),
    ("latency_p99_us", |run| run.latency.p99.to_string()),
    ("latency_p999_us", |run| run.latency.p999.to_string()),
    ("latency_max_us", |run| run.latency.max.to_string()),
    ("server_cpu_s", |run| run.server_cpu_s.to_string()),
    ("cpu_per_request_us", |run| {
        run.cpu_per_request_us.to_string()
    }),
    ("client_cpu_s", |run| run.client_cpu_s.to_string()),
    // Every worker's RSS, space-separated, in one cell.
    ("worker_rss_kib", |run| {
        run.worker_rss_kib
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }),
    ("master_rss_kib", |run| run.master_rss_kib.to_string()),
    ("little_limit_rps", |run| {
        run.little_limit_rps
            .map(|limit| limit.to_string())
            .unwrap_or_default()
    }),
    ("interrupted", |run| run.interrupted.to_string()),
];

/// Writes `report`'s runs as CSV.
pub fn write(report: &Report, out: &mut dyn Write) -> Result<(), ::csv::Error> {
    let statuses: BTreeSet<&String> = report
        .runs
        .iter()
        .flat_map(|run| run.statuses.keys())
        .collect();
    let kinds: BTreeSet<&String> = report
        .runs
        .iter()
        .flat_map(|run| run.errors.keys())
        .collect();
    let mut writer = ::csv::Writer::from_writer(out);
    let mut header: Vec<String> = FIXED.iter().map(|(name, _)| (*name).to_string()).collect();
    header.extend(statuses.iter().map(|status| format!("status_{status}")));
    header.push("errors_total".to_string());
    header.extend(kinds.iter().map(|kind| format!("errors_{kind}")));
    writer.write_record(&header)?;
    for run in &report.runs {
        let mut record: Vec<String> = FIXED.iter().map(|(_, cell)| cell(run)).collect();
        record.extend(
            statuses
                .iter()
                .map(|status| run.statuses.get(*status).copied().unwrap_or(0).to_string()),
        );
        record.push(run.errors.values().sum::<u64>().to_string());
        record.extend(
            kinds
                .iter()
                .map(|kind| run.errors.get(*kind).copied().unwrap_or(0).to_string()),
        );
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn render(report: &Report) -> String {
        let mut out = Vec::new();
        write(report, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_and_one_row_per_run() {
        let mut report = fixture::io_bound(20, 2_000.0);
        report.runs[1] = fixture::with_errors(report.runs[1].clone(), "timeout", 3);
        report.runs[1].statuses.insert("503".to_string(), 4);
        report.runs[1].little_limit_rps = None;
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + report.runs.len(), "{text}");
        assert_eq!(
            lines[0],
            "workload,app,request,class,connections,rate,requests,duration_s,rps,\
             latency_mean_us,latency_p50_us,latency_p90_us,latency_p99_us,latency_p999_us,latency_max_us,\
             server_cpu_s,cpu_per_request_us,client_cpu_s,worker_rss_kib,master_rss_kib,little_limit_rps,\
             interrupted,status_200,status_503,errors_total,errors_timeout"
        );
        // gthread at 1 connection: 48.5 req/s over 10 s = 485 requests.
        assert_eq!(
            lines[2],
            "io,builtin:io,GET /?ms=50,gthread,1,,485,10,48.5,22440,20400,20850,21300,42600,63900,\
             1.0185,2100,1.5,10240 12288,8192,,false,485,4,3,3"
        );
        assert!(lines[1].ends_with(",490,0,0,0"), "{text}");
    }

    #[test]
    fn rfc4180_quoting() {
        let mut run = fixture::run("app", "my,label", 1, 1.0, 10, 20, 1.0);
        run.app = "myapp:app".to_string();
        run.request = "POST /say \"hi\"\nline two".to_string();
        let text = render(&fixture::report(vec![run.clone()]));
        let row = text.split_once('\n').unwrap().1;
        assert!(
            row.starts_with("app,myapp:app,\"POST /say \"\"hi\"\"\nline two\",\"my,label\",1,"),
            "{row}"
        );
        // Read back by a CSV reader: the same cells.
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[2], run.request);
        assert_eq!(&record[3], "my,label");
    }

    #[test]
    fn no_runs_is_a_header() {
        let text = render(&fixture::report(Vec::new()));
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.trim_end().ends_with("interrupted,errors_total"),
            "{text}"
        );
    }
}
