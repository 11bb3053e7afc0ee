//! The drawing surface of every figure: an RGB buffer drawn by plotters' bitmap backend with
//! the bundled DejaVu Sans (no system font needed), encoded as PNG in memory; the colour map
//! and the log stretch shared by the maps.

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use std::sync::Once;

/// The bundled font (DejaVu Sans, Bitstream Vera licence: `assets/DejaVuSans.LICENSE`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Font family name every figure uses.
pub(crate) const FONT_FAMILY: &str = "sans-serif";

static REGISTER: Once = Once::new();

/// Registers the bundled font with plotters (once per process).
fn register_font() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid TrueType font compiled in; a failure would only leave
            // text undrawn, which the figure tests would catch.
            let _ = plotters::style::register_font(FONT_FAMILY, style, FONT);
        }
    });
}

/// A rendered figure: its file name, size in pixels and PNG bytes.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File name inside `DIR/figures/` (e.g. `maps_galaxy.png`).
    pub name: String,
    /// Title shown on the page.
    pub title: String,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// The PNG file's bytes.
    pub png: Vec<u8>,
}

/// Any plotters error as an anyhow error (plotters' errors are generic over the backend).
pub(crate) fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Draws a `width` × `height` figure with `draw` on a white RGB canvas and encodes it as PNG.
pub(crate) fn render<F>(name: &str, title: &str, width: u32, height: u32, draw: F) -> Result<Figure>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
{
    register_font();
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw(&root).with_context(|| format!("drawing {name}"))?;
        root.present().map_err(pe)?;
    }
    let png = encode_png(&rgb, width, height).with_context(|| format!("encoding {name}"))?;
    Ok(Figure {
        name: name.to_string(),
        title: title.to_string(),
        width,
        height,
        png,
    })
}

/// PNG bytes of an 8-bit RGB buffer.
pub(crate) fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        let mut w = enc.write_header()?;
        w.write_image_data(rgb)?;
        w.finish()?;
    }
    Ok(out)
}

/// Anchors of the perceptually uniform "viridis" colour map at t = 0, 1/8, …, 1.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// The colour of `t` in [0, 1] (clamped; NaN is the lowest colour).
pub(crate) fn colour(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + f * (q as f64 - p as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A log stretch: log10 of a value mapped linearly from [lo, hi] (log10 units) to [0, 1];
/// values ≤ 0 fall below the scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LogStretch {
    /// log10 of the value at the bottom of the scale.
    pub lo: f64,
    /// log10 of the value at the top of the scale.
    pub hi: f64,
}

impl LogStretch {
    /// The stretch from the largest positive value of `values` down `decades`, or down to
    /// just below the 2nd percentile of the positive values when that is higher (the scale
    /// spends its colours on what is there); None when no value is positive.
    pub(crate) fn fitted<'a>(values: impl Iterator<Item = &'a f64>, decades: f64) -> Option<Self> {
        let mut logs: Vec<f64> = values
            .copied()
            .filter(|v| *v > 0.0 && v.is_finite())
            .map(f64::log10)
            .collect();
        if logs.is_empty() {
            return None;
        }
        logs.sort_by(f64::total_cmp);
        let hi = logs[logs.len() - 1];
        let p2 = logs[(logs.len() - 1) * 2 / 100];
        // The 2nd percentile sits a sixth of the way up, so the sparsest bins stay visible
        // against empty ones (the bottom colour).
        let lo = (hi - decades).max(p2 - 0.2 * (hi - p2));
        Some(LogStretch {
            lo: if hi - lo < 0.1 { hi - 0.1 } else { lo },
            hi,
        })
    }

    /// Position of `v` on the scale, in [0, 1].
    pub(crate) fn t(&self, v: f64) -> f64 {
        if v > 0.0 {
            ((v.log10() - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Draws a vertical colour bar of `stretch` in `area` with the axis label `label`.
pub(crate) fn colour_bar(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    stretch: LogStretch,
    label: &str,
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(50)
        .margin_right(10)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..1.0, stretch.lo..stretch.hi)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(label)
        .label_style((FONT_FAMILY, 13))
        .draw()
        .map_err(pe)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let h = (yr.end - yr.start).max(1) as f64;
    for py in yr.clone() {
        let t = 1.0 - (py - yr.start) as f64 / h;
        let c = colour(t);
        for px in xr.clone() {
            area.draw_pixel(
                (px - area.get_base_pixel().0, py - area.get_base_pixel().1),
                &c,
            )
            .map_err(pe)?;
        }
    }
    Ok(())
}

/// Fills the plotting area of `chart`'s pixels with `pixel(x, y)` for data coordinates (x, y)
/// at each pixel centre (None: leave the pixel as it is). `area` is the chart's drawing area.
pub(crate) fn fill_pixels<F>(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    pixels: (std::ops::Range<i32>, std::ops::Range<i32>),
    x: (f64, f64),
    y: (f64, f64),
    mut pixel: F,
) -> Result<()>
where
    F: FnMut(f64, f64) -> Option<RGBColor>,
{
    let (xr, yr) = pixels;
    let (bx, by) = area.get_base_pixel();
    let w = (xr.end - xr.start).max(1) as f64;
    let h = (yr.end - yr.start).max(1) as f64;
    for py in yr.clone() {
        let fy = (py - yr.start) as f64 / h;
        let dy = y.1 - (fy + 0.5 / h) * (y.1 - y.0);
        for px in xr.clone() {
            let fx = (px - xr.start) as f64 / w;
            let dx = x.0 + (fx + 0.5 / w) * (x.1 - x.0);
            if let Some(c) = pixel(dx, dy) {
                area.draw_pixel((px - bx, py - by), &c).map_err(pe)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_map_ends_and_log_stretch() {
        assert_eq!(colour(0.0), RGBColor(68, 1, 84));
        assert_eq!(colour(1.0), RGBColor(253, 231, 37));
        assert_eq!(colour(f64::NAN), colour(0.0));
        let s = LogStretch { lo: 0.0, hi: 3.0 };
        assert!((s.t(1000.0) - 1.0).abs() < 1e-12);
        assert!((s.t(10.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.t(0.0), 0.0);
        assert_eq!(s.t(0.001), 0.0);
        let many: Vec<f64> = (1..=100).map(|i| 10f64.powf(i as f64 / 50.0)).collect();
        let f = LogStretch::fitted(many.iter(), 4.0).unwrap();
        let lo = 0.04 - 0.2 * (2.0 - 0.04);
        assert!(
            (f.hi - 2.0).abs() < 1e-12 && (f.lo - lo).abs() < 1e-9,
            "{f:?}"
        );
        assert!(
            f.t(10f64.powf(0.04)) > 0.15,
            "the sparsest bins are not the empty colour"
        );
    }

    #[test]
    fn render_gives_a_png_of_the_stated_size_with_text() {
        let fig = render("t.png", "t", 200, 100, |root| {
            root.draw(&Text::new("Hello", (10, 10), (FONT_FAMILY, 30)))
                .map_err(pe)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(&fig.png[1..4], b"PNG");
        let dec = png::Decoder::new(std::io::Cursor::new(&fig.png));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (200, 100));
        let dark = buf.chunks(3).filter(|p| p[0] < 128).count();
        assert!(
            dark > 50,
            "the text was drawn with the bundled font: {dark} dark pixels"
        );
    }
}
