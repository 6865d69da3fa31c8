//! End-to-end tests of the report module: figures to files, files to a page.
//!
//! Set `REPRO_REPORT_DEMO_DIR` to keep the rendered sample report for inspection.

use super::testutil::{check_xml, png_size};
use super::*;
use std::path::Path;

fn lottery_chart() -> LineChart {
    let remaining: [f64; 8] = [100.0, 51.2, 26.2, 13.4, 6.9, 3.5, 1.8, 0.9];
    let curve = |top: f64, drop: f64| -> Vec<Point> {
        remaining
            .iter()
            .map(|r| {
                let fall = if *r < 3.0 { drop * (3.0 / r).ln() } else { 0.0 };
                Point::with_std(
                    *r,
                    top + 0.4 * (r / 100.0).ln().abs().sqrt() - fall,
                    0.3 + 0.1 * (100.0 / r).ln(),
                )
            })
            .collect()
    };
    LineChart {
        title: "Lenet 300-100 on Fashion-MNIST".into(),
        x_label: "weights remaining (%)".into(),
        y_label: "test accuracy (%)".into(),
        x_log: true,
        x_reversed: true,
        x_range: None,
        y_range: None,
        series: vec![
            Series::new("winning ticket (rewind)", curve(89.0, 1.5))
                .style(SeriesStyle::LineMarkers),
            Series::new("random reinit | control", curve(88.6, 3.0)),
            Series::reference("paper: dense <baseline>", 89.1, 100.0, 0.9).color(6),
        ],
    }
}

fn sample_figure() -> Figure {
    let mut second = lottery_chart();
    second.title = "Conv-2 on CIFAR-10".into();
    second.y_range = Some((85.0, 92.0));
    let heat = Heatmap {
        title: "Accuracy after each task".into(),
        row_label: "trained through task".into(),
        col_label: "evaluated on task".into(),
        values: (0..5)
            .map(|i| {
                (0..5)
                    .map(|j| {
                        if j <= i {
                            0.98 - 0.03 * (i - j) as f64
                        } else {
                            f64::NAN
                        }
                    })
                    .collect()
            })
            .collect(),
        range: Some((0.5, 1.0)),
        ..Default::default()
    };
    let img = |v: u8| {
        Image::gray(
            28,
            28,
            (0..28 * 28)
                .map(|k| ((k * 7) as u8).wrapping_add(v))
                .collect(),
        )
    };
    let grid = ImageGrid {
        title: "Gaussian noise".into(),
        column_labels: vec!["0".into(), "1".into(), "2".into()],
        rows: vec![
            ("σ = 0".into(), vec![img(0), img(40), img(80)]),
            (
                "σ = 0.5".into(),
                vec![
                    img(120),
                    img(160),
                    Image::rgb(2, 2, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]),
                ],
            ),
        ],
    };
    let hist = Histogram {
        title: "Hidden weights".into(),
        x_label: "W_h".into(),
        y_label: "density".into(),
        series: vec![
            HistogramSeries {
                name: "m = 0".into(),
                values: (0..400).map(|k| ((k as f64) * 0.618).sin()).collect(),
                color: None,
            },
            HistogramSeries {
                name: "m = 1.35".into(),
                values: (0..400).map(|k| 2.0 * ((k as f64) * 0.377).sin()).collect(),
                color: None,
            },
        ],
        bins: 30,
        range: None,
        density: true,
    };
    let prov = Provenance {
        datasets: vec!["fashion-mnist (train 3000)".into()],
        pipeline: "lottery-quick".into(),
        stages: vec![
            ("dense@seed=0".into(), "3fa2c1d94e5b".into()),
            ("imp".into(), "a1b2c3d4e5f6".into()),
        ],
        seeds: vec![0, 1, 2],
    };
    Figure::new(
        vec![
            lottery_chart().into(),
            second.into(),
            heat.into(),
            grid.into(),
            hist.into(),
        ],
        2,
    )
    .title("Sample figure")
    .caption("Mean ± std over 3 seeds.")
    .provenance(&prov)
}

#[test]
fn png_and_svg_are_valid_deterministic_and_labelled() {
    let fig = sample_figure();
    let png = render_png(&fig).unwrap();
    assert_eq!(png_size(&png), Some(fig.size()));
    assert_eq!(fig.size().0, 1600);
    let svg = render_svg(&fig).unwrap();
    check_xml(&svg).unwrap();
    for name in [
        "winning ticket (rewind)",
        "random reinit | control",
        "paper: dense &lt;baseline&gt;",
        "m = 1.35",
    ] {
        assert!(
            svg.contains(name),
            "legend entry {name} missing from the SVG"
        );
    }
    assert!(
        svg.contains("lottery-quick")
            && svg.contains("3fa2c1d9")
            && svg.contains("data fashion-mnist (train 3000)"),
        "provenance missing"
    );
    assert_eq!(
        render_png(&fig).unwrap(),
        png,
        "PNG bytes differ between renders"
    );
    assert_eq!(
        render_svg(&fig).unwrap(),
        svg,
        "SVG differs between renders"
    );
}

#[test]
fn single_panel_has_the_panel_size() {
    let fig = Figure::single(lottery_chart());
    assert_eq!(png_size(&render_png(&fig).unwrap()), Some((800, 500)));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(matches!(
        render_png(&Figure::new(vec![], 1)),
        Err(ReportError::Invalid(_))
    ));
    let bad = ImageGrid {
        rows: vec![("x".into(), vec![Image::gray(3, 3, vec![0; 4])])],
        ..Default::default()
    };
    assert!(matches!(
        render_svg(&Figure::single(bad)),
        Err(ReportError::Invalid(_))
    ));
    // Degenerate data still draws.
    let odd = LineChart {
        x_log: true,
        series: vec![
            Series::new(
                "nan",
                vec![Point::new(f64::NAN, 1.0), Point::new(-1.0, 2.0)],
            ),
            Series::new("one", vec![Point::new(5.0, 5.0)]),
        ],
        ..Default::default()
    };
    let empty = LineChart::default();
    let h = Heatmap {
        values: vec![vec![], vec![f64::NAN]],
        ..Default::default()
    };
    let hist = Histogram {
        series: vec![HistogramSeries::default()],
        ..Default::default()
    };
    let fig = Figure::new(vec![odd.into(), empty.into(), h.into(), hist.into()], 0);
    check_xml(&render_svg(&fig).unwrap()).unwrap();
    assert!(render(&fig, Path::new("/tmp"), "../x").is_err());
}

#[test]
fn report_files_exist_and_page_is_escaped() {
    let keep = std::env::var_os("REPRO_REPORT_DEMO_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.as_deref().map(Path::new).unwrap_or(tmp.path());
    let fig = sample_figure();
    let files = render(&fig, &dir.join("figures"), "sample").unwrap();
    assert_eq!(files.len(), 2);
    // Each panel alone, at its full size, for inspection.
    for (i, p) in fig.panels.iter().enumerate() {
        render(
            &Figure::single(p.clone()),
            &dir.join("figures"),
            &format!("panel{i}"),
        )
        .unwrap();
    }
    let ours = Estimate::from_values(&[88.9, 89.2, 89.0]);
    let table = Table::new(
        vec!["model".into(), "acc | %".into()],
        vec![
            vec!["a|b".into(), "97.5".into()],
            vec!["<script>".into(), "1".into()],
        ],
    )
    .caption("Final accuracy");
    let report = Report {
        title: "Lottery tickets & noise".into(),
        intro: vec!["Reproduces <Bain 2022>.".into()],
        sections: vec![Section::new("Winning tickets")
            .paragraph("Tickets keep accuracy down to 3.6 % weights.")
            .figure(FigureRef::from_stem(
                "figures/sample",
                "Accuracy vs weights remaining",
            ))
            .table(table)
            .comparisons(vec![
                Comparison::new("dense accuracy (%)", Some(ours), Some(89.1), 0.5),
                Comparison::new("ticket accuracy (%)", Some(ours), Some(90.5), 0.5),
                Comparison::new("robustness (%)", None, Some(50.0), 1.0),
            ])],
    };
    let out = write_report(&report, dir).unwrap();
    let html = std::fs::read_to_string(&out[0]).unwrap();
    let md = std::fs::read_to_string(&out[1]).unwrap();
    // Every src/href of the page is a file beside it.
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = &part[..part.find('"').unwrap()];
            assert!(!target.contains(':'), "{target} is not a relative path");
            assert!(dir.join(target).is_file(), "{target} does not exist");
        }
    }
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    assert!(html.contains("badge ok") && html.contains("badge bad") && html.contains("badge na"));
    assert!(md.contains("| a\\|b | 97.5 |"), "{md}");
    assert!(md.contains("| model | acc \\| % |"));
    assert!(md.contains("**reproduced**") && md.contains("**not reproduced**"));
    assert!(md.contains("](figures/sample.png)"));
    // A page referencing a missing file is refused.
    let missing = Report {
        sections: vec![Section::new("x").figure(FigureRef::from_stem("nope", "n"))],
        ..Default::default()
    };
    assert!(write_report(&missing, dir).is_err());
    // Same input, same bytes.
    write_report(&report, dir).unwrap();
    assert_eq!(std::fs::read_to_string(&out[0]).unwrap(), html);
}
