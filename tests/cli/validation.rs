//! Invalid pipelines and arguments: exit code 2, a message naming the key, nothing run.

use crate::util::{stderr, Project};

const GOOD: &str = "name: v
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 200, test_size: 100 }
";

fn expect_invalid(text: &str, args: &[&str], needles: &[&str]) {
    let p = Project::new();
    p.file("p.yaml", text);
    let mut all = vec!["run", "p.yaml"];
    all.extend_from_slice(args);
    let out = p.run(&all);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, got {:?}: {err}",
        out.status.code()
    );
    for n in needles {
        assert!(err.contains(n), "message lacks {n:?}: {err}");
    }
    let objects = p.path().join("store/objects");
    let published = std::fs::read_dir(&objects).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        published, 0,
        "an invalid pipeline must not publish anything"
    );
}

#[test]
fn unknown_param_key_names_file_line_stage_key_and_suggests() {
    let bad = GOOD.replace("test_size", "test_sise");
    expect_invalid(
        &bad,
        &[],
        &[
            "p.yaml:5:",
            "stage `data`",
            "test_sise",
            "did you mean `test_size`?",
        ],
    );
}

#[test]
fn unknown_kind_suggests() {
    expect_invalid(
        &GOOD.replace("kind: dataset", "kind: datset"),
        &[],
        &[
            "unknown kind `datset`",
            "did you mean `dataset`?",
            "p.yaml:4:",
        ],
    );
}

#[test]
fn unknown_stage_field_suggests() {
    expect_invalid(
        &GOOD.replace("    kind: dataset", "    kind: dataset\n    neds: []"),
        &[],
        &["neds", "did you mean `needs`?"],
    );
}

#[test]
fn need_of_a_missing_stage() {
    let text = format!("{GOOD}  other:\n    kind: dataset\n    needs: [dat]\n");
    expect_invalid(
        &text,
        &[],
        &["stage `other`", "needs `dat`", "did you mean `data`?"],
    );
}

#[test]
fn cycle_names_its_stages() {
    let text = "name: c
stages:
  a: { kind: dataset, needs: [b], params: { name: synthetic } }
  b: { kind: dataset, needs: [a], params: { name: synthetic } }
";
    expect_invalid(text, &[], &["cycle", "a -> b -> a"]);
}

#[test]
fn matrix_over_a_key_the_kind_lacks() {
    let text = GOOD.replace(
        "    kind: dataset",
        "    kind: dataset\n    matrix: { epochs: [1, 2] }",
    );
    expect_invalid(
        &text,
        &[],
        &[
            "matrix over `epochs`",
            "kind `dataset` has no param `epochs`",
        ],
    );
}

#[test]
fn type_mismatch_names_the_key() {
    expect_invalid(
        &GOOD.replace("test_size: 100", "test_size: lots"),
        &[],
        &["key `test_size`", "invalid type"],
    );
}

#[test]
fn malformed_yaml_gives_a_position() {
    expect_invalid(
        "name: x\nstages:\n  a: [unclosed\n",
        &[],
        &["p.yaml:", "invalid pipeline file"],
    );
}

#[test]
fn set_on_an_unknown_stage_or_key() {
    expect_invalid(
        GOOD,
        &["--set", "dta.test_size=5"],
        &["no stage `dta`", "did you mean `data`?"],
    );
    expect_invalid(
        GOOD,
        &["--set", "data.tes_size=5"],
        &["tes_size", "did you mean `test_size`?"],
    );
}

#[test]
fn unknown_profile_lists_the_profiles() {
    let text = format!("{GOOD}profiles:\n  smoke: {{ data.test_size: 10 }}\n");
    expect_invalid(
        &text,
        &["--profile", "smok"],
        &["no profile `smok`", "did you mean `smoke`?"],
    );
}

#[test]
fn cuda_without_the_feature_is_invalid_input() {
    if cfg!(feature = "cuda") {
        println!("SKIP: built with the cuda feature, so --device cuda is valid here");
        return;
    }
    expect_invalid(GOOD, &["--device", "cuda"], &["--features cuda"]);
}
