//! `sharedcare generate`: a synthetic ICS population (the `generate` crate)
//! written as FHIR NDJSON or transaction Bundles, with progress on stderr
//! and a summary at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use generate::output::{BundleWriter, Counts, NdjsonWriter, Sink, generate};
use generate::{Date, Ics, Settings};
use sharedcare_core::Clock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One `<Type>.ndjson` file per resource type (FHIR bulk data form).
    Ndjson,
    /// Transaction Bundles of PUT entries (`directory.json`, then
    /// `people-<first index>.json`).
    Bundles,
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// The population's size (organisations are sized for it).
    #[arg(long)]
    people: u64,
    /// The seed: the same seed, size and date give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// People per transaction Bundle (`--format bundles`).
    #[arg(long, default_value_t = 100)]
    bundle_size: usize,
    /// The first person to write: resume a run, or split one between
    /// processes (files are appended to when this is not 0).
    #[arg(long, default_value_t = 0)]
    start_index: u64,
    /// One past the last person to write (default: --people).
    #[arg(long)]
    end_index: Option<u64>,
    /// "Today" for the generated record, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    now: Option<String>,
}

/// Today's date (UTC) from the real clock.
fn today() -> Date {
    let micros = crate::SystemClock.now();
    Date::from_days(micros.div_euclid(86_400_000_000))
}

/// Peak resident set size, from `/proc/self/status` (Linux only).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().to_owned())
}

fn directory_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Progress of `generate`: people written (see [`crate::progress`]); a
/// plain line every second without a terminal.
struct Progress {
    inner: crate::progress::Progress,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            inner: crate::progress::Progress::new(
                total,
                "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} people ({per_sec}, about {eta} left)",
                Duration::from_secs(1),
            ),
            total,
        }
    }

    fn update(&mut self, done: u64) {
        // The bar redraws at most twice a second whatever the rate; the
        // clock is looked at once per 256 people.
        if !(done.is_multiple_of(256) || done == self.total) {
            return;
        }
        if let Some(bar) = self.inner.bar() {
            bar.set_position(done);
        } else if self.inner.line_due() {
            eprintln!(
                "generate: {done}/{} people, {:.0} people/s",
                self.total,
                self.inner.rate(done)
            );
        }
    }

    fn finish(&self) {
        self.inner.finish();
    }
}

pub fn run(args: &GenerateArgs) -> Result<(), String> {
    let now = match &args.now {
        Some(s) => {
            Date::parse(s).ok_or_else(|| format!("--now: {s:?} is not a YYYY-MM-DD date"))?
        }
        None => today(),
    };
    let settings = Settings {
        seed: args.seed,
        people: args.people,
        start_index: args.start_index,
        end_index: args.end_index,
        now,
    };
    let range = settings.range();
    if range.end > generate::nhs::CAPACITY {
        eprintln!(
            "generate: warning: the NHS number test range (999 000 0000–999 999 9999) holds {} valid numbers; people from index {} on get a local identifier instead",
            generate::nhs::CAPACITY,
            generate::nhs::CAPACITY
        );
    }
    let append = args.start_index > 0;
    let started = Instant::now();
    let ics = Ics::new(&settings);
    let mut progress = Progress::new(range.end - range.start);
    let result: std::io::Result<Counts> = match args.format {
        Format::Ndjson => {
            let mut w = NdjsonWriter::create(&args.out, append).map_err(|e| e.to_string())?;
            run_into(&ics, &settings, &mut w, &mut progress)
        }
        Format::Bundles => {
            let mut w = BundleWriter::create(&args.out, args.bundle_size, append)
                .map_err(|e| e.to_string())?;
            run_into(&ics, &settings, &mut w, &mut progress)
        }
    };
    progress.finish();
    let counts = result.map_err(|e| format!("writing to {}: {e}", args.out.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let people = range.end - range.start;
    let total: u64 = counts.values().sum();
    println!(
        "generated {people} people (indices {}..{}, seed {}, now {now}) into {} as {:?}",
        range.start,
        range.end,
        args.seed,
        args.out.display(),
        args.format
    );
    println!(
        "{total} resources in {seconds:.1} s ({:.0} people/s, {:.0} resources/s); {} organisations, {} users",
        people as f64 / seconds.max(1e-9),
        total as f64 / seconds.max(1e-9),
        ics.orgs.len(),
        ics.users.len()
    );
    for (kind, n) in &counts {
        println!("  {kind:<26} {n:>12}");
    }
    println!(
        "output: {:.1} MB; peak RSS: {}",
        directory_size(&args.out) as f64 / 1e6,
        peak_rss().unwrap_or_else(|| "unknown".to_owned())
    );
    Ok(())
}

fn run_into(
    ics: &Ics,
    settings: &Settings,
    sink: &mut impl Sink,
    progress: &mut Progress,
) -> std::io::Result<Counts> {
    generate(ics, settings, sink, |done| progress.update(done))
}
