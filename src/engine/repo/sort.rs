//! Puts each COPY block of a data stream in a stable order (its lines
//! sorted bytewise) before the stream is chunked: PostgreSQL stores an
//! updated row somewhere else, so in pg_dump's physical order every update
//! moves a row and changes two places of the stream; sorted, an updated row
//! stays where it was (a table whose first column is its key is in key
//! order) and its chunk's delta is just the edit. Restores load a block as
//! a whole, so the order inside it changes nothing; table checksums do not
//! depend on it either.
//!
//! Memory is bounded: a block's lines are sorted in runs of [`RUN_BYTES`]
//! spilled to temporary files in `dir`, then merged.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bytes of lines sorted in memory at once.
pub const RUN_BYTES: usize = 16 * 1024 * 1024;

/// Sorts COPY blocks flowing through it into `out`.
pub struct BlockSorter {
    dir: PathBuf,
    /// The unfinished line.
    partial: Vec<u8>,
    in_block: bool,
    lines: Vec<Vec<u8>>,
    held: usize,
    runs: Vec<tempfile::NamedTempFile>,
}

impl BlockSorter {
    /// Spills runs into `dir`.
    pub fn new(dir: &Path) -> BlockSorter {
        BlockSorter {
            dir: dir.to_path_buf(),
            partial: Vec::new(),
            in_block: false,
            lines: Vec::new(),
            held: 0,
            runs: Vec::new(),
        }
    }

    /// Takes bytes of the stream, writes what is ready to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut dyn Write) -> io::Result<()> {
        while let Some(nl) = memchr_nl(bytes) {
            let (line, rest) = bytes.split_at(nl + 1);
            bytes = rest;
            if self.partial.is_empty() {
                self.line(line.to_vec(), out)?;
            } else {
                let mut l = std::mem::take(&mut self.partial);
                l.extend_from_slice(line);
                self.line(l, out)?;
            }
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    /// The end of the stream: anything held goes out.
    pub fn finish(mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.in_block {
            // A stream cut inside a block: pass it on as it came (the tap
            // reports the missing end).
            self.flush_block(out)?;
        }
        out.write_all(&self.partial)
    }

    fn line(&mut self, line: Vec<u8>, out: &mut dyn Write) -> io::Result<()> {
        if !self.in_block {
            if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;\n") {
                self.in_block = true;
            }
            return out.write_all(&line);
        }
        if line == b"\\.\n" {
            self.flush_block(out)?;
            self.in_block = false;
            return out.write_all(&line);
        }
        self.held += line.len() + 24;
        self.lines.push(line);
        if self.held >= RUN_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.lines.sort_unstable();
        let tmp = tempfile::Builder::new()
            .prefix(".sort-")
            .tempfile_in(&self.dir)?;
        {
            let mut w = BufWriter::with_capacity(256 * 1024, tmp.as_file());
            for l in self.lines.drain(..) {
                w.write_all(&l)?;
            }
            w.flush()?;
        }
        self.held = 0;
        self.runs.push(tmp);
        Ok(())
    }

    fn flush_block(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.lines.sort_unstable();
        if self.runs.is_empty() {
            for l in self.lines.drain(..) {
                out.write_all(&l)?;
            }
            self.held = 0;
            return Ok(());
        }
        self.spill()?;
        let runs = std::mem::take(&mut self.runs);
        let mut readers: Vec<BufReader<File>> = Vec::with_capacity(runs.len());
        for r in &runs {
            readers.push(BufReader::with_capacity(64 * 1024, r.reopen()?));
        }
        // (line, run) with the smallest line on top.
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(l) = next_line(r)? {
                heap.push(std::cmp::Reverse((l, i)));
            }
        }
        while let Some(std::cmp::Reverse((l, i))) = heap.pop() {
            out.write_all(&l)?;
            if let Some(n) = next_line(&mut readers[i])? {
                heap.push(std::cmp::Reverse((n, i)));
            }
        }
        drop(runs);
        Ok(())
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}

fn next_line(r: &mut BufReader<File>) -> io::Result<Option<Vec<u8>>> {
    let mut l = Vec::new();
    if r.read_until(b'\n', &mut l)? == 0 {
        return Ok(None);
    }
    Ok(Some(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(input: &[u8], piece: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = BlockSorter::new(dir.path());
        let mut out = Vec::new();
        for p in input.chunks(piece) {
            s.push(p, &mut out).expect("push");
        }
        s.finish(&mut out).expect("finish");
        out
    }

    #[test]
    fn blocks_are_sorted_and_everything_else_passes_through() {
        let input = b"SET x = 1;\nCOPY public.t (id, v) FROM stdin;\n3\tc\n1\ta\n2\tb\n\\.\nSELECT 1;\nCOPY public.u (v) FROM stdin;\nz\ny\n\\.\n-- end\n";
        let want = b"SET x = 1;\nCOPY public.t (id, v) FROM stdin;\n1\ta\n2\tb\n3\tc\n\\.\nSELECT 1;\nCOPY public.u (v) FROM stdin;\ny\nz\n\\.\n-- end\n";
        for piece in [1, 3, 7, 1000] {
            assert_eq!(sorted(input, piece), want.to_vec(), "pieces of {piece}");
        }
    }

    #[test]
    fn a_block_larger_than_a_run_is_merged_from_spilled_runs() {
        let mut input = b"COPY public.big (v) FROM stdin;\n".to_vec();
        let mut lines: Vec<Vec<u8>> = (0..400_000u64)
            .map(|i| {
                format!(
                    "{:016x}\t{}\n",
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    "x".repeat(40)
                )
                .into_bytes()
            })
            .collect();
        for l in &lines {
            input.extend_from_slice(l);
        }
        input.extend_from_slice(b"\\.\n");
        assert!(input.len() > RUN_BYTES, "more than one run");
        lines.sort();
        let mut want = b"COPY public.big (v) FROM stdin;\n".to_vec();
        for l in &lines {
            want.extend_from_slice(l);
        }
        want.extend_from_slice(b"\\.\n");
        assert_eq!(sorted(&input, 65_536), want);
    }
}
