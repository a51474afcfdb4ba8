//! End-to-end: write small CSVs to a temp dir, render every figure, decode the PNGs and
//! check their size and that something was drawn; check that a missing or malformed CSV
//! skips only its own figures and is reported.

use std::fs::File;
use std::path::Path;

const LATENCY: &str = "\
cache,p,kind,count,errors,p50_ms,p90_ms,p99_ms,mean_ms
on,0,query,100,0,0.4,0.8,1.6,0.5
on,0,order,0,0,0,0,0,0
on,0,lookup,0,0,0,0,0,0
on,0.4,query,60,0,0.5,1.0,2.4,0.6
on,0.4,order,40,1,7.0,12,28,8
on,0.4,lookup,40,0,1.3,2.4,5,1.5
off,0,query,100,0,1.5,2.4,4.4,1.7
off,0,order,0,0,0,0,0,0
off,0,lookup,0,0,0,0,0,0
off,0.4,query,60,0,1.6,2.6,5,1.8
off,0.4,order,40,2,7.4,13,28,8.6
off,0.4,lookup,40,0,1.3,2.5,5.4,1.5
";

const FAILOVER: &str = "\
time_s,kind,latency_ms,status,session,node
0.1,query,0.6,200,1,
0.2,order,8.1,200,2,
0.3,lookup,1.4,404,1,
1.0,kill,,,,2
1.1,order,2000,0,2,
1.2,order,650,503,3,
1.3,query,0.7,200,1,
3.0,restart,,,,2
3.2,order,9.5,200,2,
3.4,lookup,1.2,200,3,
";

/// The decoded RGB pixels of a PNG, with its size.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

fn decode(path: &Path) -> Image {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(file).read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb, "plotters writes RGB");
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Image {
        width: info.width,
        height: info.height,
        rgb,
    }
}

fn setup(latency: Option<&str>, failover: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("data dir");
    for (name, text) in [("latency.csv", latency), ("failover.csv", failover)] {
        if let Some(text) = text {
            std::fs::write(dir.path().join("data").join(name), text).expect("write csv");
        }
    }
    dir
}

/// How many pixels have exactly `color`.
fn count(image: &Image, color: [u8; 3]) -> usize {
    image.rgb.iter().filter(|p| **p == color).count()
}

#[test]
fn renders_every_figure_as_png_and_svg() {
    let dir = setup(Some(LATENCY), Some(FAILOVER));
    let out = dir.path().join("out");
    let report = plots::render_all(&dir.path().join("data"), &out);
    assert!(report.ok(), "{:?}", report.problems);

    let mut written: Vec<String> = report
        .written
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "cache_benefit.png",
            "cache_benefit.svg",
            "failover_timeline.png",
            "failover_timeline.svg",
            "latency_vs_p.png",
            "latency_vs_p.svg",
        ]
    );

    let query_blue = [31, 119, 180];
    for stem in ["latency_vs_p", "cache_benefit", "failover_timeline"] {
        let image = decode(&out.join(format!("{stem}.png")));
        assert_eq!((image.width, image.height), plots::render::SIZE, "{stem}");
        assert_eq!(image.rgb.len(), 1200 * 700, "{stem}");
        let white = count(&image, [255, 255, 255]);
        assert!(
            white > image.rgb.len() / 2,
            "{stem}: background should be mostly white"
        );
        assert!(
            white < image.rgb.len() - 5_000,
            "{stem}: almost nothing drawn ({white} white pixels)"
        );
        // The query series (solid lines, bars, legend swatch) is drawn in its colour.
        assert!(
            count(&image, query_blue) > 50,
            "{stem}: no query-blue pixels"
        );

        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).expect("svg");
        assert!(svg.starts_with("<svg"), "{stem}.svg");
        assert!(svg.contains("<text"), "{stem}.svg has no text");
    }

    // Kill and restart lines, in their colours, only in the failover figure.
    let timeline = decode(&out.join("failover_timeline.png"));
    assert!(count(&timeline, [214, 39, 40]) > 300, "no red kill line");
    assert!(
        count(&timeline, [44, 160, 44]) > 300,
        "no green restart line"
    );
    let bars = decode(&out.join("cache_benefit.png"));
    assert_eq!(count(&bars, [214, 39, 40]), 0);
}

#[test]
fn missing_failover_csv_skips_only_the_timeline() {
    let dir = setup(Some(LATENCY), None);
    let out = dir.path().join("out");
    let report = plots::render_all(&dir.path().join("data"), &out);
    assert!(!report.ok());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("failover_timeline")
            && report.problems[0].contains("failover.csv"),
        "{}",
        report.problems[0]
    );
    assert_eq!(report.written.len(), 4);
    assert!(out.join("latency_vs_p.png").is_file());
    assert!(out.join("cache_benefit.svg").is_file());
    assert!(!out.join("failover_timeline.png").exists());
}

#[test]
fn malformed_latency_row_is_reported_with_its_line() {
    let broken = LATENCY.replace("on,0.4,order,40,1,7.0", "on,0.4,order,forty,1,7.0");
    let dir = setup(Some(&broken), Some(FAILOVER));
    let out = dir.path().join("out");
    let report = plots::render_all(&dir.path().join("data"), &out);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert!(
        problem.contains("latency.csv: line 6:") && problem.contains("count"),
        "{problem}"
    );
    assert!(out.join("failover_timeline.png").is_file());
    assert!(!out.join("latency_vs_p.png").exists());
}
