//! The command line as clap sees it: flags and arguments, nothing resolved yet.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::expand;

#[derive(Parser, Debug)]
#[command(
    name = "sweep",
    version,
    about = "Benchmark campaigns on Slurm GPU clusters"
)]
pub struct Cli {
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct OutputArgs {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true, conflicts_with = "quiet")]
    pub json: bool,
    /// Print only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Expand a sweep file into one directory per job (or print the plan with --dry-run).
    Expand(ExpandArgs),
    /// Inspect and check job templates.
    #[command(subcommand)]
    Templates(TemplatesCmd),
    /// Cluster profiles: import one from a node's `nvidia-smi topo -m` (and `lscpu`).
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Submit every job of a campaign not yet submitted (sbatch), with stage dependencies.
    Submit(SubmitArgs),
    /// Show the campaign's jobs by state (one squeue call per poll).
    Status(StatusArgs),
    /// Cancel a campaign's jobs (all, a stage's, or the named ones).
    Cancel(CancelArgs),
    /// Parse a campaign's logs (or any directory of logs) into CSV tables and a summary.
    Collect(CollectArgs),
    /// Expand the built-in demo campaign, run it here with the local executor, collect it.
    Demo(DemoArgs),
    /// Analyse a campaign (collecting it first): scaling efficiency, bus bandwidth against line
    /// rates, per-job figures, targets met or missed.
    Analyze(AnalyzeArgs),
    /// Write report.html (self-contained, inline SVG charts) and summary.md for a campaign.
    Report(AnalyzeArgs),
    /// Check a sweep file before submitting: batch algebra, memory per GPU, targets (implied
    /// MFU, line-rate ceilings). Exits 1 on an error-level finding.
    Check(CheckArgs),
    /// The local executor's stand-ins for `srun` and `scontrol` (on PATH inside its jobs).
    #[command(hide = true, name = "local-exec", disable_help_flag = true)]
    LocalExec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ProfileCmd {
    /// Write a profile from `nvidia-smi topo -m` output: GPU -> NUMA -> CPUs -> nearest NIC.
    Import {
        /// A file holding `nvidia-smi topo -m` output (`-` for standard input).
        topo: PathBuf,
        /// A file holding `lscpu` output (sockets, cores, threads).
        #[arg(long)]
        lscpu: Option<PathBuf>,
        #[arg(long, default_value = "imported")]
        name: String,
        /// Nodes of the cluster.
        #[arg(long, default_value_t = 1)]
        nodes: u32,
        #[arg(long)]
        partition: Option<String>,
        /// GPU model (`NVIDIA H200`): its peak and HBM are filled in when known.
        #[arg(long)]
        gpu_model: Option<String>,
        #[arg(long)]
        peak_bf16_tflops: Option<f64>,
        #[arg(long)]
        hbm_gib: Option<f64>,
        /// Line rate of each NIC.
        #[arg(long, default_value_t = 400.0)]
        nic_rate_gbps: f64,
        /// Where to write the profile (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct AnalyzeArgs {
    pub campaign: PathBuf,
    /// Where `collect` writes its tables and the analysis goes (default: results/<campaign>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The sweep file (TOML), or a campaign directory (its copies of the sweep file and profile).
    pub sweep: PathBuf,
    /// Cluster profile file, instead of the one the sweep file names.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Warnings count as errors too.
    #[arg(long)]
    pub strict: bool,
    /// List every finding.
    #[arg(long)]
    pub all: bool,
    /// Refuse a sweep that asks for more points than this (before building any).
    #[arg(long, default_value_t = expand::DEFAULT_MAX_POINTS)]
    pub max_points: u64,
    /// Results directory of a collected campaign of the same cluster (runs.csv): its measured
    /// step times replace the expected-MFU estimate for the same points.
    #[arg(long)]
    pub measured: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Campaign directory (default: runs/demo).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the tables go (default: results/demo).
    #[arg(long)]
    pub results: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct CollectArgs {
    /// Campaign directory (from `sweep expand`).
    #[arg(required_unless_present = "logs", conflicts_with = "logs")]
    pub campaign: Option<PathBuf>,
    /// Any directory tree of logs instead of a campaign: each log is a run (not a `.md` note, a
    /// `.csv` other than nvidia-smi output or a `.json` other than an nccl-tests report).
    #[arg(long)]
    pub logs: Option<PathBuf>,
    /// Where the tables go (default: results/<campaign name>, or results/<dir name> for --logs).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Re-read every file, ignoring the cache.
    #[arg(long)]
    pub force: bool,
    /// A sweep file whose `[[collect.pattern]]`s to use too (with --logs: the only ones).
    #[arg(long)]
    pub patterns: Option<PathBuf>,
    /// With --logs: a file to read as a run whatever its kind (a `.md`, `.csv` or `.json` the
    /// rule leaves out), by its path under the tree or its file name (repeatable).
    #[arg(long = "include", requires = "logs")]
    pub include: Vec<String>,
}

#[derive(Args, Debug)]
pub(crate) struct SubmitArgs {
    pub campaign: PathBuf,
    /// Only these stages (repeatable).
    #[arg(long = "stage")]
    pub stages: Vec<String>,
    /// Keep at most N of the campaign's jobs pending or running; submit the rest later.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Print the exact sbatch command lines and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Submit held (`sbatch --hold`); release with `scontrol release`.
    #[arg(long)]
    pub hold: bool,
    /// Retries of a transient sbatch failure (controller not answering).
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// `slurm` (sbatch) or `local`: run single-node jobs here, one after another, without Slurm.
    #[arg(long, value_enum, default_value_t = Executor::Slurm)]
    pub executor: Executor,
    /// Local executor: run again jobs that already ran.
    #[arg(long)]
    pub rerun: bool,
    /// Submit jobs with error-level plan-check findings (predicted out of memory, ...) too.
    #[arg(long, conflicts_with = "skip_flagged")]
    pub force: bool,
    /// Submit the jobs without error-level plan-check findings; record the others as
    /// `skipped` with the reason (`sweep status` shows it), never submitted.
    #[arg(long)]
    pub skip_flagged: bool,
}

pub use crate::executor::Executor;

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    pub campaign: PathBuf,
    /// Poll until every job has ended, backing off while nothing changes.
    #[arg(long)]
    pub watch: bool,
    /// List every job even for large campaigns.
    #[arg(long)]
    pub all: bool,
    /// Rebuild the campaign state from Slurm's queue and accounting and the job markers
    /// (after `state.json` was lost, emptied, reset or corrupted; a corrupt one is kept aside).
    #[arg(long)]
    pub rebuild: bool,
    /// With --watch: stop (exit 3) once Slurm's controller has not answered for this long.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub give_up_after: u64,
}

#[derive(Args, Debug)]
pub(crate) struct CancelArgs {
    pub campaign: PathBuf,
    #[arg(long = "stage")]
    pub stages: Vec<String>,
    /// Job ids (sweep's) to cancel; default: all active jobs of the selection.
    pub jobs: Vec<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ExpandArgs {
    /// The sweep file (TOML).
    pub sweep: PathBuf,
    /// Campaign directory to write (default: runs/<campaign name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory of templates overriding the built-in ones (a file with the same name wins).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Cluster profile file, instead of the one the sweep file names.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Print every job's row even for large campaigns.
    #[arg(long)]
    pub all: bool,
    /// Plan-check findings (see `sweep check`) at warning level or above stop the expand.
    #[arg(long)]
    pub strict: bool,
    /// Refuse a sweep that asks for more points than this (before building any).
    #[arg(long, default_value_t = expand::DEFAULT_MAX_POINTS)]
    pub max_points: u64,
    /// Write into an --out that is not this campaign's directory, or over a campaign whose
    /// jobs have run: says what it replaces.
    #[arg(long)]
    pub force: bool,
    /// Override a parameter in every stage (`steps=5`, `nodes=[1]`, `slurm.time="00:10:00"`;
    /// the value is TOML), repeatable: a smoke variant without editing the file. The campaign's
    /// copy of the sweep file records the values.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TemplatesCmd {
    /// List the templates visible (user directories first, then built-in).
    List {
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Print a template's source.
    Show {
        name: String,
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Render a template file with a sample point and run `bash -n` on the result.
    Check {
        file: PathBuf,
        /// Take the sample point from this sweep file (default: the built-in seed campaign).
        #[arg(long)]
        sweep: Option<PathBuf>,
        /// Print the rendered script.
        #[arg(long)]
        print: bool,
    },
}
