//! Expansion speed on a 10,000-point sweep: points only, points + rendering every script and
//! ds_config in memory, and the whole `expand` writing a campaign directory.
//! Run: `cargo bench --bench expand`.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use sweep::campaign;
use sweep::expand::expand;
use sweep::profile::Profile;
use sweep::render::Renderer;
use sweep::spec;

const PROFILE: &str = include_str!("../slurm/clusters/fukushima-h200.toml");

fn big_sweep() -> String {
    // 4 node counts x 25 micro-batches x 100 accumulations = 10,000 training points.
    let micro: Vec<String> = (1..=25).map(|i| i.to_string()).collect();
    let accum: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    format!(
        r#"name = "bench"
cluster = "fukushima-h200"
[defaults]
zero_stage = 3
[deepspeed.zero_optimization]
overlap_comm = true
[[stage]]
name = "grid"
template = "deepspeed-train.sbatch.j2"
scaling = "weak"
exclude = ["micro_batch * grad_accum > 100000"]
[stage.derive]
samples_per_node = "global_batch // nodes"
[stage.matrix]
model = ["llama2-7b"]
nodes = [1, 2, 4, 8]
micro_batch = [{}]
grad_accum = [{}]
"#,
        micro.join(", "),
        accum.join(", ")
    )
}

fn bench(c: &mut Criterion) {
    let sweep = spec::parse(Path::new("bench.toml"), big_sweep()).expect("bench sweep parses");
    let profile =
        Profile::parse(Path::new("fukushima-h200.toml"), PROFILE).expect("profile parses");
    let plan = expand(&sweep, &profile).expect("expands");
    assert_eq!(plan.points.len(), 10_000);
    let templates = campaign::default_templates(&sweep, None).expect("templates");
    let renderer = Renderer::new(&templates);

    let mut g = c.benchmark_group("expand-10k");
    g.sample_size(10);
    g.bench_function("points", |b| {
        b.iter(|| expand(&sweep, &profile).expect("expands"))
    });
    g.bench_function("points+render", |b| {
        b.iter(|| {
            use rayon::prelude::*;
            let plan = expand(&sweep, &profile).expect("expands");
            plan.points
                .par_iter()
                .map(|p| {
                    campaign::render_job(&sweep, &profile, &renderer, p).map(|j| j.files.len())
                })
                .sum::<anyhow::Result<usize>>()
                .expect("renders")
        })
    });
    g.bench_function("points+render+write (fresh dir)", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                let plan = expand(&sweep, &profile).expect("expands");
                campaign::write(&sweep, &profile, PROFILE, &plan, &renderer, dir.path())
                    .expect("writes");
                dir
            },
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
