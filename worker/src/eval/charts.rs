//! Pictures of the evaluation, drawn without fonts (the report's text names what they show):
//! per-class recall by method as grouped bars, and confusion matrices as heat maps.

use image::{Rgb, RgbImage};

use super::metrics::ConfusionMatrix;
use crate::error::Result;
use crate::gan::sample::encode_png;

/// Bar colours by the method's position in the run's method list (grey, blue, orange, green,
/// red, purple, brown, pink); the report's legend names the method of each colour.
pub const METHOD_COLOURS: [[u8; 3]; 8] = [
    [120, 120, 120],
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
];
const BAR: u32 = 6;
const GROUP_GAP: u32 = 10;
const HEIGHT: u32 = 200;
const MARGIN: u32 = 10;

fn fill(image: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, colour: [u8; 3]) {
    for x in x0..(x0 + w).min(image.width()) {
        for y in y0..(y0 + h).min(image.height()) {
            image.put_pixel(x, y, Rgb(colour));
        }
    }
}

/// `recalls[method][class]` in [0, 1] as groups of bars, one group per class (class order),
/// one bar per method; grid lines at 25 %, 50 %, 75 % and 100 %.
pub fn recall_bars_png(recalls: &[Vec<f64>]) -> Result<Vec<u8>> {
    let methods = recalls.len().max(1) as u32;
    let classes = recalls.first().map_or(0, Vec::len) as u32;
    let group = methods * BAR + GROUP_GAP;
    let width = 2 * MARGIN + classes * group;
    let mut image = RgbImage::from_pixel(width, HEIGHT + 2 * MARGIN, Rgb([255, 255, 255]));
    for quarter in 1..=4 {
        let y = MARGIN + HEIGHT - HEIGHT * quarter / 4;
        fill(
            &mut image,
            MARGIN,
            y,
            width - 2 * MARGIN,
            1,
            [220, 220, 220],
        );
    }
    for (m, per_class) in recalls.iter().enumerate() {
        let colour = METHOD_COLOURS[m % METHOD_COLOURS.len()];
        for (k, recall) in per_class.iter().enumerate() {
            let h = (recall.clamp(0.0, 1.0) * f64::from(HEIGHT)).round() as u32;
            let x = MARGIN + k as u32 * group + m as u32 * BAR;
            fill(&mut image, x, MARGIN + HEIGHT - h, BAR - 1, h, colour);
        }
    }
    fill(
        &mut image,
        MARGIN,
        MARGIN + HEIGHT,
        width - 2 * MARGIN,
        1,
        [0, 0, 0],
    );
    encode_png(&image::DynamicImage::ImageRgb8(image), "recall chart")
}

/// Rows are true classes, columns predictions; each cell's darkness is its share of the row
/// (white 0, black 1), the diagonal in green.
pub fn confusion_png(matrix: &ConfusionMatrix) -> Result<Vec<u8>> {
    const CELL: u32 = 16;
    let k = matrix.classes() as u32;
    let mut image = RgbImage::from_pixel(k * CELL + 2, k * CELL + 2, Rgb([0, 0, 0]));
    for (t, row) in matrix.counts.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &count) in row.iter().enumerate() {
            let share = if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            };
            let level = (255.0 * (1.0 - share)).round() as u8;
            let colour = if t == p {
                [level, 255 - (255 - level) / 2, level]
            } else {
                [level, level, level]
            };
            fill(
                &mut image,
                1 + p as u32 * CELL,
                1 + t as u32 * CELL,
                CELL - 1,
                CELL - 1,
                colour,
            );
        }
    }
    encode_png(&image::DynamicImage::ImageRgb8(image), "confusion matrix")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_as_tall_as_the_recall() {
        let png = recall_bars_png(&[vec![1.0, 0.0], vec![0.5, 0.25]]).unwrap();
        let image = image::load_from_memory(&png).unwrap().to_rgb8();
        let group = 2 * BAR + GROUP_GAP;
        assert_eq!(image.width(), 2 * MARGIN + 2 * group);
        // Method 0, class 0: full height, grey at the top.
        assert_eq!(image.get_pixel(MARGIN, MARGIN + 1).0, METHOD_COLOURS[0]);
        // Method 1, class 0: half height: white above the middle, blue below.
        let x = MARGIN + BAR;
        assert_eq!(
            image.get_pixel(x, MARGIN + HEIGHT / 2 - 2).0,
            [255, 255, 255]
        );
        assert_eq!(
            image.get_pixel(x, MARGIN + HEIGHT / 2 + 2).0,
            METHOD_COLOURS[1]
        );
        // Method 0, class 1: zero recall, no bar.
        assert_eq!(
            image.get_pixel(MARGIN + group, MARGIN + HEIGHT - 2).0,
            [255, 255, 255]
        );
    }

    #[test]
    fn confusion_cells_darken_with_their_share() {
        let matrix = ConfusionMatrix::from_labels(&[0, 0, 1, 1], &[0, 1, 1, 1], 2).unwrap();
        let image = image::load_from_memory(&confusion_png(&matrix).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(image.width(), 2 * 16 + 2);
        // Row 1 predicted all as 1: the diagonal cell is fully green, the other white.
        assert_eq!(image.get_pixel(1 + 16 + 5, 1 + 16 + 5).0, [0, 128, 0]);
        assert_eq!(image.get_pixel(1 + 5, 1 + 16 + 5).0, [255, 255, 255]);
        // Row 0 split half/half: mid grey off the diagonal.
        assert_eq!(image.get_pixel(1 + 16 + 5, 1 + 5).0, [128, 128, 128]);
    }
}
