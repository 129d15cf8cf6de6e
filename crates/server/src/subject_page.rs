//! The human-readable form of a subject's access report: one server-rendered HTML page
//! (maud, which escapes every interpolated string), no script, no external resources. The
//! JSON Lines form is the one to verify; the page says how.

use maud::{DOCTYPE, Markup, html};
use service::{ReportLine, SubjectReport};

/// The page for `report`.
pub(crate) fn render(report: &SubjectReport) -> String {
    let header = &report.header;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Who accessed your data — " (header.subject) }
                style { (STYLE) }
            }
            body {
                h1 { "Who accessed your data" }
                p {
                    "Subject " code { (header.subject) } " in region " code { (header.region) }
                    ". This report lists every access decision about you recorded in the log "
                    code { (header.origin) } " up to entry " (header.tree_size) ", as of "
                    (header.generated_at.to_rfc3339()) "."
                }
                @if header.withheld > 0 {
                    p.notice {
                        (header.withheld) " more recent "
                        (if header.withheld == 1 { "access is" } else { "accesses are" })
                        " not shown yet: accesses are reported " (header.notice_delay_seconds) " seconds after they happen."
                    }
                }
                @if let Some(next) = header.next {
                    p.notice #more { "More accesses follow: ask for this page again with " code { "from=" (next) } " added to its address." }
                }
                @if report.lines.is_empty() {
                    p { "No access to your data is recorded." }
                } @else {
                    table {
                        thead { tr { th { "When (UTC)" } th { "Purpose and case" } th { "What was asked, what was granted" } th { "Who" } th { "Decision" } th { "Receipt" } } }
                        tbody { @for line in &report.lines { (row(line)) } }
                    }
                }
                h2 { "Checking this report" }
                p {
                    "Each receipt is an entry in a public, append-only log. Download the JSON form of this page "
                    "(" code { "?format=json" } ") and run " code { "custos receipt verify --report FILE --key KEY" }
                    " with the log's verifier key: it checks the signed checkpoint below and proves every line is in the log."
                }
                pre { (header.checkpoint) }
            }
        }
    };
    page.into_string()
}

fn row(line: &ReportLine) -> Markup {
    let access = &line.access;
    html! {
        tr {
            td { (access.at.format("%Y-%m-%d %H:%M:%S")) }
            td {
                (access.purpose)
                @if let Some(case) = &access.case { br; "case " code { (case) } }
                @if access.action != "read" { br; "action: " (access.action) }
                @if access.break_glass { br; strong { "break-glass" } }
            }
            td {
                ul {
                    @for field in &access.fields {
                        li {
                            (field.field) ": asked " (field.requested) ", " (field.decision)
                            @if let Some(view) = &field.view { " (" (view) ")" }
                        }
                    }
                }
            }
            td {
                (access.actor.roles.join(", "))
                @if let Some(entity) = &access.actor.entity { br; (entity) }
                @if let Some(country) = &access.actor.country { br; (country) @if access.cross_border { " (from outside your region)" } }
                @if let Some(id) = &access.actor.id { br; code { (id) } }
            }
            td { (access.decision) }
            td { code { (line.receipt.index) } br; small { (line.receipt.leaf_hash) } }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4rem;vertical-align:top;text-align:left}\
ul{margin:0;padding-left:1.1rem}.notice{background:#fff6d5;padding:.5rem}pre{white-space:pre-wrap;background:#f4f4f4;padding:.5rem}\
small{word-break:break-all}";
