//! Continual learning and the whole-paper pipeline: the dendrites,
//! metaplasticity and paper pipelines' quick profiles end to end, and what the
//! continual stage measures on small settings.

use serde_json::Value;

use crate::util::{output_csv as csv, stderr, with_status, Project};

const DENDRITES: &str = include_str!("../../pipelines/dendrites.yaml");
const METAPLASTICITY: &str = include_str!("../../pipelines/metaplasticity.yaml");
const PAPER: &str = include_str!("../../pipelines/paper.yaml");

/// Every `src`/`href` of a report's index.html that is not inline names a file that exists.
fn assert_links_exist(dir: &std::path::Path) {
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for link in html
        .split("src=\"")
        .skip(1)
        .chain(html.split("href=\"").skip(1))
    {
        let target = link.split('"').next().unwrap();
        if !target.starts_with("data:") && !target.starts_with('#') && !target.starts_with("http") {
            assert!(
                dir.join(target).exists(),
                "index.html links a missing {target}"
            );
        }
    }
}

fn manifest(p: &Project, pipeline: &str, profile: &str, stage: &str) -> Value {
    let out = p.run(&["show", pipeline, "--profile", profile, stage, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dendrites_quick_profile_trains_every_network_and_reports_the_accuracy_matrix() {
    let p = Project::new();
    p.file("dendrites.yaml", DENDRITES);
    let run = ["run", "dendrites.yaml", "--profile", "quick", "--json"];
    let ran = p.statuses(&run);
    for stage in [
        "adn_10@seed=0",
        "sparse_10@seed=0",
        "mlp_10@seed=0",
        "cnn@seed=0",
        "adn_cnn@seed=0",
        "report",
    ] {
        assert!(
            with_status(&ran, "ran").contains(&stage.to_string()),
            "{stage}: {ran:?}"
        );
    }
    // Two permuted tasks: the matrix is lower-triangular (3 entries), one summary row per task.
    let adn = manifest(&p, "dendrites.yaml", "quick", "adn_10@seed=0");
    let matrix = csv(&adn, "accuracy.csv");
    assert_eq!(matrix[0], ["after_task", "epoch", "task", "accuracy"]);
    let cells: Vec<(String, String)> = matrix[1..]
        .iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    assert_eq!(
        cells,
        [("0", "0"), ("1", "0"), ("1", "1")].map(|(a, b)| (a.into(), b.into()))
    );
    assert_eq!(csv(&adn, "summary.csv").len(), 3);
    let m = &adn["metrics"];
    let prototypes = m["prototype_inference_accuracy"].as_f64().unwrap();
    assert!(prototypes > 0.9, "prototype inference {prototypes}");
    assert!(m["final_mean_accuracy"].as_f64().unwrap() > 0.2);
    // The split CNN learned 2 tasks (tiny settings: its accuracy means nothing).
    let cnn = manifest(&p, "dendrites.yaml", "quick", "cnn@seed=0");
    assert_eq!(cnn["metrics"]["tasks"], 2);
    // The report: figures exist and the page links only files that exist.
    let dir = p.path().join("reports/dendrites");
    for f in [
        "continual_0.png",
        "continual_0.svg",
        "continual_1_matrix.png",
    ] {
        assert!(dir.join("figures").join(f).is_file(), "{f}");
    }
    assert_links_exist(&dir);
    // Same pipeline, same seed: the same bytes.
    let again = Project::new();
    again.file("dendrites.yaml", DENDRITES);
    again.statuses(&run);
    let other = manifest(&again, "dendrites.yaml", "quick", "adn_10@seed=0");
    assert_eq!(adn["output"], other["output"]);
}

#[test]
fn metaplasticity_quick_profile_tests_every_task_after_every_epoch() {
    let p = Project::new();
    p.file("metaplasticity.yaml", METAPLASTICITY);
    let ran = p.statuses(&["run", "metaplasticity.yaml", "--profile", "quick", "--json"]);
    assert!(with_status(&ran, "ran").contains(&"report".to_string()));
    // 2 tasks x 2 epochs, tested on the tasks seen so far: 2 + 2 x 2 = 6 rows.
    let bnn = manifest(&p, "metaplasticity.yaml", "quick", "pmnist_m135@seed=0");
    assert_eq!(csv(&bnn, "epoch_accuracy.csv").len(), 1 + 6);
    // A dataset sequence: one task per dataset.
    let seq = manifest(&p, "metaplasticity.yaml", "quick", "seq_m0@seed=0");
    assert_eq!(seq["metrics"]["tasks"], 2);
    // A stream of 4 parts is tested on the one test set after each part.
    let stream = manifest(&p, "metaplasticity.yaml", "quick", "stream_m0@seed=0");
    let summary = csv(&stream, "summary.csv");
    assert_eq!(summary.len(), 1 + 4);
    assert!(summary[1..].iter().all(|r| r[1] == r[2]), "{summary:?}");
    assert!(p
        .path()
        .join("reports/metaplasticity/figures/continual_epochs.svg")
        .is_file());
}

/// Bain's split in the dendrites quick profile (2 tasks of 2 Fashion-MNIST classes, seed
/// 0): `tasks.json` lists the classes in Python's `random.Random(0).shuffle` order and the
/// labels his in-place remapping leaves them (7 8 | 1 5 all end at label 1, as the Python
/// replay of his loop gives), the manifest counts them, and the stage, which also trains on
/// augmented images, gives the same bytes in another store.
#[test]
fn bain_in_place_split_writes_the_collided_labels_to_tasks_json() {
    let stage = "cnn_bain@seed=0";
    let run = |p: &Project| {
        p.file("dendrites.yaml", DENDRITES);
        let args = [
            "run",
            "dendrites.yaml",
            "--profile",
            "quick",
            "--only",
            stage,
            "--json",
        ];
        let ran = p.statuses(&args);
        assert!(
            with_status(&ran, "ran").contains(&stage.to_string()),
            "{ran:?}"
        );
        manifest(p, "dendrites.yaml", "quick", stage)
    };
    let p = Project::new();
    let m = run(&p);
    let dir = std::path::PathBuf::from(m["output_dir"].as_str().unwrap());
    let tasks: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tasks.json")).unwrap()).unwrap();
    let split = &tasks["kind"]["split_in_place"];
    assert_eq!(
        split["classes"],
        serde_json::json!([[7, 8], [1, 5]]),
        "{tasks}"
    );
    assert_eq!(
        split["labels"],
        serde_json::json!([[1, 1], [1, 1]]),
        "{tasks}"
    );
    assert_eq!(m["metrics"]["mislabelled_classes"], 2);
    assert_eq!(
        m["metrics"]["distinct_labels_per_task"],
        serde_json::json!([1, 1])
    );
    assert_eq!(m["metrics"]["tasks"], 2);
    let again = run(&Project::new());
    assert_eq!(m["output"], again["output"]);
}

const SMALL: &str = "name: small
seed: 0
stages:
  data:
    kind: dataset
    params: { name: fashion-mnist, train_limit: 3000, test_limit: 1000 }
  mlp:
    kind: continual
    needs: [data]
    params:
      tasks: { permuted: { count: 2 } }
      model: { type: mlp, hidden: [64] }
      optimizer: { type: adam, lr: 0.003 }
      epochs: 3
      batch_size: 32
";

/// Catastrophic forgetting, measured: an MLP that learns a second permutation
/// loses much of the first.
#[test]
fn an_mlp_forgets_the_first_permuted_task() {
    let p = Project::new();
    p.file("p.yaml", SMALL);
    p.statuses(&["run", "p.yaml", "--json"]);
    let out = p.run(&["show", "p.yaml", "mlp", "--json"]);
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = csv(&m, "accuracy.csv");
    let first_alone: f64 = rows[1][3].parse().unwrap();
    let first_after: f64 = rows[2][3].parse().unwrap();
    assert!(first_alone > 0.7, "task 1 learned: {first_alone}");
    assert!(
        first_after < first_alone - 0.1,
        "{first_alone} -> {first_after}"
    );
}

#[test]
fn bad_continual_params_exit_2_naming_the_key() {
    let p = Project::new();
    let model = "model: { type: mlp, hidden: [64] }";
    let dendritic =
        "model: { type: dendritic, hidden: [8], percent_on: 2.0, weight_sparsity: 0.5 }";
    let bnn = "model: { type: bnn, hidden: [8] }";
    let optimizer = "optimizer: { type: adam, lr: 0.003 }";
    let meta = "optimizer: { type: adam-meta, lr: 0.005, meta: [1.0, 1.0, 1.0] }";
    for (text, key) in [
        (SMALL.replace(model, dendritic), "model.percent_on"),
        (
            SMALL.replace("count: 2", "count: 0"),
            "tasks.permuted.count",
        ),
        (
            SMALL.replace(model, bnn).replace(optimizer, meta),
            "optimizer.meta",
        ),
    ] {
        p.file("bad.yaml", &text);
        let out = p.run(&["run", "bad.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{key}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{key}: {}", stderr(&out));
    }
    assert!(
        !p.path().join("store/objects").exists()
            || std::fs::read_dir(p.path().join("store/objects"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn paper_quick_profile_runs_every_experiment_into_one_report() {
    let p = Project::new();
    p.file("paper.yaml", PAPER);
    let ran = p.statuses(&["run", "paper.yaml", "--profile", "quick", "--json"]);
    let kinds = [
        "fc1@seed=0",
        "noise",
        "adn_cnn@seed=0",
        "pmnist_m135@seed=0",
        "stream_m0@seed=0",
        "report",
    ];
    for stage in kinds {
        assert!(
            with_status(&ran, "ran").contains(&stage.to_string()),
            "{stage}: {ran:?}"
        );
    }
    let dir = p.path().join("reports/paper");
    for f in [
        "lottery_accuracy.svg",
        "noise_noise.svg",
        "continual_0.svg",
        "continual_epochs.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join("figures").join(f)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}"
        );
        assert!(
            svg.contains("data fashion-mnist (train "),
            "{f} names no dataset"
        );
    }
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        page.matches("(data: fashion-mnist (train ").count() >= 4,
        "figure captions name no dataset"
    );
    assert_links_exist(&dir);
    // Nothing left to do on a second run.
    let again = p.statuses(&["run", "paper.yaml", "--profile", "quick", "--json"]);
    assert!(with_status(&again, "ran").is_empty(), "{again:?}");
}
