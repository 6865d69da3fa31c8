//! A minimal, deterministic PNG encoder for 8-bit RGB buffers (zlib via flate2).

use flate2::{write::ZlibEncoder, Compression, Crc};
use std::io::Write;

/// Encodes `rgb` (row-major, 3 bytes per pixel) as a PNG file.
///
/// Rows use the "Up" filter, which suits the flat areas of plots.
pub(crate) fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> std::io::Result<Vec<u8>> {
    let stride = width as usize * 3;
    if rgb.len() != stride * height as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "pixel buffer does not match the image size",
        ));
    }
    let mut raw = Vec::with_capacity((stride + 1) * height as usize);
    let zero = vec![0u8; stride];
    for y in 0..height as usize {
        let row = &rgb[y * stride..(y + 1) * stride];
        let prev = if y == 0 {
            &zero[..]
        } else {
            &rgb[(y - 1) * stride..y * stride]
        };
        raw.push(2); // filter type Up
        raw.extend(row.iter().zip(prev).map(|(a, b)| a.wrapping_sub(*b)));
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::new(6));
    z.write_all(&raw)?;
    let idat = z.finish()?;

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, no interlace

    let mut out = Vec::with_capacity(idat.len() + 64);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    #[test]
    fn round_trips_through_zlib() {
        let (w, h) = (3u32, 2u32);
        let rgb: Vec<u8> = (0..18).map(|i| (i * 13) as u8).collect();
        let png = encode_rgb(w, h, &rgb).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let dims = crate::report::testutil::png_size(&png).unwrap();
        assert_eq!(dims, (3, 2));
        // Decode IDAT and undo the Up filter.
        let len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        ZlibDecoder::new(&png[41..41 + len])
            .read_to_end(&mut raw)
            .unwrap();
        let mut back = vec![0u8; 18];
        for y in 0..2 {
            assert_eq!(raw[y * 10], 2);
            for x in 0..9 {
                let up = if y == 0 { 0 } else { back[(y - 1) * 9 + x] };
                back[y * 9 + x] = raw[y * 10 + 1 + x].wrapping_add(up);
            }
        }
        assert_eq!(back, rgb);
        assert!(encode_rgb(2, 2, &rgb).is_err());
    }
}
