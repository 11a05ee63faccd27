//! The disk buffer between the sampler and the InfluxDB server: everything
//! written goes through it, so an outage (or a restart during one) loses
//! nothing that was appended. Append-only segment files of checksummed
//! records, a persisted read cursor, a bound on disk use that drops the
//! oldest segment (counted) only when full, and recovery that cuts a torn or
//! corrupt tail (counted) and resumes.
//!
//! On disk, in the buffer directory:
//! - `NNNNNNNNNNNNNNNNNNNN.seg` (20-digit sequence): an 8-byte magic
//!   `RMNIFX01`, then records `[len u32][points u32][crc32 u32][payload]`
//!   (little endian; the CRC covers the points field and the payload; the
//!   payload is the records' lines joined by `\n`).
//! - `cursor`: `<seq> <offset> <points before offset>` of the first record
//!   not yet acknowledged by the server. It is written (renamed into place)
//!   on every acknowledgement but not fsynced: after a crash a few batches
//!   may be sent again, which overwrites the same points (explicit
//!   timestamps) instead of doubling them.
//!
//! Durability: with [`BufferConfig::sync`] each append is `fdatasync`ed
//! before it returns, and a new segment's directory entry is synced, so a
//! crash loses nothing appended.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The magic at the start of every segment file.
pub const MAGIC: &[u8; 8] = b"RMNIFX01";
/// Bytes of a record header.
pub const RECORD_HEADER: u64 = 12;
/// Largest record accepted (a record is one append).
pub const MAX_RECORD: u64 = 64 << 20;

/// How a buffer behaves.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Where the segment files live (created if missing).
    pub dir: PathBuf,
    /// Most bytes on disk; past it the oldest segment is dropped.
    pub max_bytes: u64,
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    /// `fdatasync` every append (and the directory on a new segment).
    pub sync: bool,
}

impl BufferConfig {
    /// A buffer in `dir` of at most `max_bytes`, with segments of 4 MiB (or
    /// an eighth of the bound, when that is smaller, so dropping the oldest
    /// segment never throws away most of the buffer), synced on every append.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(4096, 4 << 20),
            sync: true,
        }
    }
}

/// What was found and cut when the buffer was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments found.
    pub segments: usize,
    /// Points waiting to be sent.
    pub points: u64,
    /// Torn records (a crash in the middle of an append) cut off the end of
    /// a segment: their points were never acknowledged to the writer.
    pub torn_records: u64,
    /// Points in records whose checksum did not match (dropped with the
    /// rest of their segment), where the header still told how many.
    pub corrupt_points: u64,
}

/// Where a read stopped: segment, byte offset, points before the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    seq: u64,
    offset: u64,
    points_before: u64,
}

/// Records read from the buffer, to be sent and then acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The lines, newline-separated.
    pub lines: String,
    /// How many points (lines).
    pub points: u64,
    /// Where the next unread record starts.
    end: Pos,
}

impl Batch {
    /// The lines one by one.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.split('\n').filter(|l| !l.is_empty())
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    points: u64,
}

/// The buffer.
#[derive(Debug)]
pub struct Buffer {
    cfg: BufferConfig,
    /// Oldest first; the last one is where appends go.
    segments: VecDeque<Segment>,
    head: Option<File>,
    /// First unacknowledged record, in `segments[0]`.
    cursor: Pos,
    next_seq: u64,
    dropped_full: u64,
    dropped_corrupt: u64,
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

fn record(lines: &str, points: u32) -> Vec<u8> {
    let mut rec = Vec::with_capacity(lines.len() + RECORD_HEADER as usize);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&points.to_le_bytes());
    crc.update(lines.as_bytes());
    rec.extend_from_slice(&(lines.len() as u32).to_le_bytes());
    rec.extend_from_slice(&points.to_le_bytes());
    rec.extend_from_slice(&crc.finalize().to_le_bytes());
    rec.extend_from_slice(lines.as_bytes());
    rec
}

/// One record read back: `Ok(Some((points, payload)))`, `Ok(None)` at a clean
/// end, `Err(Bad::Torn)` for a short read, `Err(Bad::Crc(points))` for a
/// checksum mismatch.
enum Bad {
    Torn,
    Crc(u64),
}

fn read_record(f: &mut impl Read, room: u64) -> io::Result<Result<Option<(u64, String)>, Bad>> {
    if room == 0 {
        return Ok(Ok(None));
    }
    if room < RECORD_HEADER {
        return Ok(Err(Bad::Torn));
    }
    let mut h = [0u8; RECORD_HEADER as usize];
    f.read_exact(&mut h)?;
    let len = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
    let points = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if len > MAX_RECORD {
        return Ok(Err(Bad::Crc(0)));
    }
    if RECORD_HEADER + len > room {
        return Ok(Err(Bad::Torn));
    }
    let mut payload = vec![0u8; len as usize];
    f.read_exact(&mut payload)?;
    let mut c = crc32fast::Hasher::new();
    c.update(&points.to_le_bytes());
    c.update(&payload);
    if c.finalize() != crc {
        return Ok(Err(Bad::Crc(u64::from(points))));
    }
    match String::from_utf8(payload) {
        Ok(s) => Ok(Ok(Some((u64::from(points), s)))),
        Err(_) => Ok(Err(Bad::Crc(u64::from(points)))),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Buffer {
    /// Open (or create) the buffer in `cfg.dir`: scan every segment, cut a
    /// torn or corrupt tail, and resume at the persisted cursor.
    pub fn open(cfg: BufferConfig) -> io::Result<(Self, Recovery)> {
        fs::create_dir_all(&cfg.dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(&cfg.dir)?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        let cursor = fs::read_to_string(cfg.dir.join("cursor"))
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(str::parse::<u64>);
                Some(Pos {
                    seq: it.next()?.ok()?,
                    offset: it.next()?.ok()?,
                    points_before: it.next()?.ok()?,
                })
            });
        let mut rec = Recovery::default();
        let mut segments = VecDeque::new();
        for seq in seqs {
            let path = cfg.dir.join(seg_name(seq));
            if cursor.is_some_and(|c| seq < c.seq) {
                // Acknowledged entirely; its deletion did not happen.
                fs::remove_file(&path)?;
                continue;
            }
            let (bytes, points) = scan(&path, &mut rec)?;
            segments.push_back(Segment { seq, bytes, points });
        }
        let mut b = Buffer {
            next_seq: segments.back().map_or(0, |s| s.seq + 1),
            cursor: Pos {
                seq: segments.front().map_or(0, |s| s.seq),
                offset: MAGIC.len() as u64,
                points_before: 0,
            },
            segments,
            head: None,
            dropped_full: 0,
            dropped_corrupt: rec.corrupt_points,
            cfg,
        };
        if let (Some(c), Some(first)) = (cursor, b.segments.front()) {
            if c.seq == first.seq && c.offset <= first.bytes && c.points_before <= first.points {
                b.cursor = c;
            }
        }
        b.skip_acked()?;
        rec.segments = b.segments.len();
        rec.points = b.points();
        Ok((b, rec))
    }

    /// Append one record of newline-separated `lines` holding `points`
    /// points. Makes room first by dropping the oldest segments (their
    /// unsent points are counted as dropped, `buffer_full`).
    pub fn append(&mut self, lines: &str, points: u32) -> io::Result<()> {
        let rec = record(lines, points);
        let len = rec.len() as u64;
        if len > MAX_RECORD || len + MAGIC.len() as u64 > self.cfg.max_bytes {
            self.dropped_full += u64::from(points);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a record of {len} bytes does not fit the buffer"),
            ));
        }
        let mut roll = match (self.segments.back(), &self.head) {
            (Some(s), Some(_)) => {
                s.bytes + len > self.cfg.segment_bytes && s.bytes > MAGIC.len() as u64
            }
            _ => true,
        };
        loop {
            let new_seg = if roll { MAGIC.len() as u64 } else { 0 };
            if self.bytes() + len + new_seg <= self.cfg.max_bytes || self.segments.is_empty() {
                break;
            }
            if self.segments.len() == 1 && !roll {
                // The only segment is the one appended to: close it first.
                roll = true;
                continue;
            }
            self.drop_oldest()?;
        }
        if roll {
            self.roll()?;
        }
        let Some(f) = self.head.as_mut() else {
            return Err(io::Error::other("no segment open"));
        };
        let seg = self.segments.back_mut().expect("a head segment exists");
        if let Err(e) = f
            .write_all(&rec)
            .and_then(|()| if self.cfg.sync { f.sync_data() } else { Ok(()) })
        {
            // Leave no half record behind for the reader.
            let _ = f.set_len(seg.bytes);
            let _ = f.seek(SeekFrom::Start(seg.bytes));
            return Err(e);
        }
        seg.bytes += len;
        seg.points += u64::from(points);
        Ok(())
    }

    /// Read records from the cursor on, up to `max_points` points (at least
    /// one record). `None` when everything is acknowledged.
    pub fn peek(&mut self, max_points: u64) -> io::Result<Option<Batch>> {
        self.skip_acked()?;
        let mut lines = String::new();
        let mut points = 0u64;
        let mut pos = self.cursor;
        let mut i = 0;
        while i < self.segments.len() && points < max_points.max(1) {
            let seg = &self.segments[i];
            if pos.seq != seg.seq {
                pos = Pos {
                    seq: seg.seq,
                    offset: MAGIC.len() as u64,
                    points_before: 0,
                };
            }
            if pos.offset >= seg.bytes {
                i += 1;
                continue;
            }
            let mut f = match File::open(self.cfg.dir.join(seg_name(seg.seq))) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && points == 0 => {
                    // Deleted behind our back: its points are lost (counted);
                    // reading goes on with the next segment.
                    let before = if i == 0 { self.cursor.points_before } else { 0 };
                    self.dropped_corrupt += seg.points.saturating_sub(before);
                    self.segments.remove(i);
                    if i == self.segments.len() {
                        self.head = None;
                    }
                    if i == 0 {
                        self.cursor = Pos {
                            seq: self.segments.front().map_or(self.next_seq, |f| f.seq),
                            offset: MAGIC.len() as u64,
                            points_before: 0,
                        };
                        pos = self.cursor;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            f.seek(SeekFrom::Start(pos.offset))?;
            let mut f = io::BufReader::new(f);
            while points < max_points.max(1) && pos.offset < seg.bytes {
                match read_record(&mut f, seg.bytes - pos.offset)? {
                    Ok(Some((n, text))) => {
                        if !lines.is_empty() && !text.is_empty() {
                            lines.push('\n');
                        }
                        lines.push_str(&text);
                        points += n;
                        pos.offset += RECORD_HEADER + text.len() as u64;
                        pos.points_before += n;
                    }
                    Ok(None) => break,
                    Err(bad) => {
                        // Rotted since it was written: the rest of this
                        // segment cannot be trusted or resynchronised.
                        let _ = bad;
                        let lost = self.segments[i].points.saturating_sub(pos.points_before);
                        self.dropped_corrupt += lost;
                        let path = self.cfg.dir.join(seg_name(self.segments[i].seq));
                        let seg = &mut self.segments[i];
                        seg.bytes = pos.offset;
                        seg.points = pos.points_before;
                        OpenOptions::new()
                            .write(true)
                            .open(path)?
                            .set_len(pos.offset)?;
                        if i + 1 == self.segments.len() {
                            // The head's file position must follow.
                            if let Some(h) = self.head.as_mut() {
                                h.seek(SeekFrom::Start(pos.offset))?;
                            }
                        }
                        break;
                    }
                }
            }
            i += 1;
        }
        if points == 0 && lines.is_empty() {
            // Only empty records: acknowledge them.
            if pos != self.cursor {
                self.cursor = pos;
                self.persist_cursor()?;
            }
            return Ok(None);
        }
        Ok(Some(Batch {
            lines,
            points,
            end: pos,
        }))
    }

    /// The server took (or refused for good) everything in `batch`: move
    /// the cursor past it and delete segments read to the end.
    pub fn ack(&mut self, batch: &Batch) -> io::Result<()> {
        let Some(first) = self.segments.front() else {
            return Ok(());
        };
        // Its segments may have been dropped meanwhile (buffer full).
        if batch.end.seq < first.seq
            || (batch.end.seq == self.cursor.seq && batch.end.offset <= self.cursor.offset)
        {
            return Ok(());
        }
        while self.segments.front().is_some_and(|s| s.seq < batch.end.seq) {
            self.remove_front()?;
        }
        self.cursor = batch.end;
        self.skip_acked()?;
        self.persist_cursor()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Points not yet acknowledged.
    pub fn points(&self) -> u64 {
        let all: u64 = self.segments.iter().map(|s| s.points).sum();
        all.saturating_sub(self.cursor.points_before)
    }

    /// The bound on disk use, bytes.
    pub fn capacity(&self) -> u64 {
        self.cfg.max_bytes
    }

    /// Points dropped because the buffer was full, since it was opened.
    pub fn dropped_full(&self) -> u64 {
        self.dropped_full
    }

    /// Points dropped because their record was corrupt, since opened.
    pub fn dropped_corrupt(&self) -> u64 {
        self.dropped_corrupt
    }

    /// Segment files.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// `fdatasync` the segment appends go to (for a buffer opened without
    /// per-append sync, e.g. at shutdown).
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.head {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    fn roll(&mut self) -> io::Result<()> {
        if let Some(f) = self.head.take() {
            if self.cfg.sync {
                f.sync_data()?;
            }
        }
        let seq = self.next_seq;
        // The directory may have been deleted while running.
        fs::create_dir_all(&self.cfg.dir)?;
        let path = self.cfg.dir.join(seg_name(seq));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        f.write_all(MAGIC)?;
        if self.cfg.sync {
            f.sync_data()?;
            sync_dir(&self.cfg.dir)?;
        }
        self.next_seq += 1;
        if self.segments.is_empty() {
            self.cursor = Pos {
                seq,
                offset: MAGIC.len() as u64,
                points_before: 0,
            };
        }
        self.segments.push_back(Segment {
            seq,
            bytes: MAGIC.len() as u64,
            points: 0,
        });
        self.head = Some(f);
        Ok(())
    }

    fn drop_oldest(&mut self) -> io::Result<()> {
        let unsent = match self.segments.front() {
            Some(s) if s.seq == self.cursor.seq => {
                s.points.saturating_sub(self.cursor.points_before)
            }
            Some(s) => s.points,
            None => return Ok(()),
        };
        self.dropped_full += unsent;
        self.remove_front()?;
        self.persist_cursor()
    }

    /// Delete the oldest segment; the cursor moves to the next one.
    fn remove_front(&mut self) -> io::Result<()> {
        let Some(s) = self.segments.pop_front() else {
            return Ok(());
        };
        if self.segments.is_empty() {
            self.head = None;
        }
        match fs::remove_file(self.cfg.dir.join(seg_name(s.seq))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.cursor = Pos {
            seq: self.segments.front().map_or(self.next_seq, |f| f.seq),
            offset: MAGIC.len() as u64,
            points_before: 0,
        };
        Ok(())
    }

    /// Delete segments read to the end that are no longer appended to.
    fn skip_acked(&mut self) -> io::Result<()> {
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.seq == self.cursor.seq && self.cursor.offset >= s.bytes)
        {
            self.remove_front()?;
        }
        Ok(())
    }

    fn persist_cursor(&self) -> io::Result<()> {
        let tmp = self.cfg.dir.join("cursor.tmp");
        fs::write(
            &tmp,
            format!(
                "{} {} {}\n",
                self.cursor.seq, self.cursor.offset, self.cursor.points_before
            ),
        )?;
        fs::rename(tmp, self.cfg.dir.join("cursor"))
    }
}

/// Scan one segment: its good length and points; a torn or corrupt tail is
/// cut off (counted in `rec`). A file without the magic is emptied.
fn scan(path: &Path, rec: &mut Recovery) -> io::Result<(u64, u64)> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let size = f.metadata()?.len();
    let mut magic = [0u8; 8];
    if size < MAGIC.len() as u64 || {
        f.read_exact(&mut magic)?;
        &magic != MAGIC
    } {
        if size > 0 {
            rec.torn_records += 1;
        }
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(MAGIC)?;
        f.sync_data()?;
        return Ok((MAGIC.len() as u64, 0));
    }
    let mut r = io::BufReader::new(&mut f);
    let mut offset = MAGIC.len() as u64;
    let mut points = 0;
    loop {
        match read_record(&mut r, size - offset)? {
            Ok(Some((n, text))) => {
                offset += RECORD_HEADER + text.len() as u64;
                points += n;
            }
            Ok(None) => break,
            Err(bad) => {
                match bad {
                    Bad::Torn => rec.torn_records += 1,
                    Bad::Crc(n) => rec.corrupt_points += n,
                }
                drop(r);
                f.set_len(offset)?;
                f.sync_data()?;
                break;
            }
        }
    }
    Ok((offset, points))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max: u64, seg: u64) -> BufferConfig {
        BufferConfig {
            dir: dir.to_path_buf(),
            max_bytes: max,
            segment_bytes: seg,
            sync: false,
        }
    }

    fn lines(from: u32, n: u32) -> String {
        (from..from + n)
            .map(|i| format!("m v={i}i {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Read and acknowledge everything; the point numbers in order.
    fn drain(b: &mut Buffer, per_batch: u64) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(batch) = b.peek(per_batch).unwrap() {
            for l in batch.lines() {
                out.push(l.rsplit(' ').next().unwrap().parse().unwrap());
            }
            assert_eq!(batch.lines().count() as u64, batch.points);
            b.ack(&batch).unwrap();
        }
        out
    }

    #[test]
    fn appends_are_read_in_order_across_segments_and_acked_segments_go() {
        let d = tempfile::tempdir().unwrap();
        let (mut b, rec) = Buffer::open(cfg(d.path(), 1 << 20, 256)).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..20 {
            b.append(&lines(i * 3, 3), 3).unwrap();
        }
        assert!(b.segments() > 3, "{}", b.segments());
        assert_eq!(b.points(), 60);
        let got = drain(&mut b, 7);
        assert_eq!(got, (0..60).collect::<Vec<_>>());
        assert_eq!(b.points(), 0);
        assert_eq!(b.segments(), 1, "only the head stays");
        assert!(b.peek(10).unwrap().is_none());
        // Appending after a full drain still works.
        b.append(&lines(60, 2), 2).unwrap();
        assert_eq!(drain(&mut b, 10), vec![60, 61]);
    }

    #[test]
    fn a_batch_not_acked_is_read_again() {
        let d = tempfile::tempdir().unwrap();
        let (mut b, _) = Buffer::open(cfg(d.path(), 1 << 20, 4096)).unwrap();
        b.append(&lines(0, 2), 2).unwrap();
        b.append(&lines(2, 2), 2).unwrap();
        let first = b.peek(2).unwrap().unwrap();
        assert_eq!(first.points, 2);
        let again = b.peek(2).unwrap().unwrap();
        assert_eq!(first, again);
        b.ack(&first).unwrap();
        b.ack(&first).unwrap(); // twice is harmless
        assert_eq!(b.points(), 2);
        assert_eq!(drain(&mut b, 10), vec![2, 3]);
    }

    #[test]
    fn a_restart_resumes_at_the_cursor() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut b, _) = Buffer::open(cfg(d.path(), 1 << 20, 200)).unwrap();
            for i in 0..10 {
                b.append(&lines(i * 2, 2), 2).unwrap();
            }
            let batch = b.peek(5).unwrap().unwrap();
            b.ack(&batch).unwrap();
        }
        let (mut b, rec) = Buffer::open(cfg(d.path(), 1 << 20, 200)).unwrap();
        assert_eq!(rec.points, 14);
        assert_eq!(rec.torn_records, 0);
        b.append(&lines(20, 1), 1).unwrap();
        assert_eq!(drain(&mut b, 4), (6..21).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_tail_is_cut_and_counted_and_the_rest_kept() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut b, _) = Buffer::open(cfg(d.path(), 1 << 20, 1 << 20)).unwrap();
            b.append(&lines(0, 3), 3).unwrap();
            b.append(&lines(3, 3), 3).unwrap();
        }
        let seg = d.path().join(seg_name(0));
        let len = fs::metadata(&seg).unwrap().len();
        // A crash in the middle of the second append.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let (mut b, rec) = Buffer::open(cfg(d.path(), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(rec.torn_records, 1);
        assert_eq!(rec.points, 3);
        b.append(&lines(6, 1), 1).unwrap();
        assert_eq!(drain(&mut b, 100), vec![0, 1, 2, 6]);
    }

    #[test]
    fn a_checksum_mismatch_drops_the_rest_of_the_segment_counted() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut b, _) = Buffer::open(cfg(d.path(), 1 << 20, 1 << 20)).unwrap();
            for i in 0..3 {
                b.append(&lines(i * 2, 2), 2).unwrap();
            }
        }
        let seg = d.path().join(seg_name(0));
        let mut bytes = fs::read(&seg).unwrap();
        // Flip a byte in the second record's payload.
        let second = MAGIC.len() + RECORD_HEADER as usize + lines(0, 2).len();
        bytes[second + RECORD_HEADER as usize + 2] ^= 0x20;
        fs::write(&seg, bytes).unwrap();
        let (mut b, rec) = Buffer::open(cfg(d.path(), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(rec.corrupt_points, 2);
        assert_eq!(b.dropped_corrupt(), 2);
        assert_eq!(rec.points, 2);
        assert_eq!(drain(&mut b, 100), vec![0, 1]);
    }

    #[test]
    fn corruption_found_while_reading_is_dropped_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let (mut b, _) = Buffer::open(cfg(d.path(), 1 << 20, 1 << 20)).unwrap();
        for i in 0..3 {
            b.append(&lines(i * 2, 2), 2).unwrap();
        }
        let seg = d.path().join(seg_name(0));
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0x01;
        fs::write(&seg, bytes).unwrap();
        assert_eq!(drain(&mut b, 100), vec![0, 1, 2, 3]);
        assert_eq!(b.dropped_corrupt(), 2);
        // Appends continue after the cut.
        b.append(&lines(9, 1), 1).unwrap();
        assert_eq!(drain(&mut b, 100), vec![9]);
    }

    #[test]
    fn when_full_the_oldest_segment_is_dropped_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let rec_len = RECORD_HEADER + lines(1000, 4).len() as u64;
        // Segments of two records; room for three segments.
        let seg = MAGIC.len() as u64 + 2 * rec_len;
        let (mut b, _) = Buffer::open(cfg(d.path(), 3 * seg, seg)).unwrap();
        for i in 0..6 {
            b.append(&lines(1000 + i * 4, 4), 4).unwrap();
        }
        assert_eq!(b.dropped_full(), 0);
        assert_eq!(b.points(), 24);
        // The seventh record needs a fourth segment: the oldest goes.
        b.append(&lines(1024, 4), 4).unwrap();
        assert_eq!(b.dropped_full(), 8);
        assert!(b.bytes() <= 3 * seg);
        assert_eq!(b.points(), 20);
        let got = drain(&mut b, 100);
        assert_eq!(got, (1008..1028).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_a_partly_sent_segment_counts_only_what_was_unsent() {
        let d = tempfile::tempdir().unwrap();
        let rec_len = RECORD_HEADER + lines(1000, 4).len() as u64;
        let seg = MAGIC.len() as u64 + 2 * rec_len;
        let (mut b, _) = Buffer::open(cfg(d.path(), 2 * seg, seg)).unwrap();
        for i in 0..4 {
            b.append(&lines(1000 + i * 4, 4), 4).unwrap();
        }
        let first = b.peek(4).unwrap().unwrap();
        b.ack(&first).unwrap();
        b.append(&lines(1016, 4), 4).unwrap();
        assert_eq!(b.dropped_full(), 4);
        assert_eq!(drain(&mut b, 100), (1008..1020).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_larger_than_the_buffer_is_refused_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let (mut b, _) = Buffer::open(cfg(d.path(), 64, 64)).unwrap();
        assert!(b.append(&lines(0, 10), 10).is_err());
        assert_eq!(b.dropped_full(), 10);
        assert_eq!(b.points(), 0);
    }

    #[test]
    fn a_segment_deleted_while_running_is_counted_and_reading_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let (mut b, _) = Buffer::open(cfg(d.path(), 1 << 20, 100)).unwrap();
        for i in 0..10 {
            b.append(&lines(i * 2, 2), 2).unwrap();
        }
        assert!(b.segments() >= 3, "{}", b.segments());
        let first = b.peek(1).unwrap().unwrap();
        b.ack(&first).unwrap();
        let in_first = b.segments[0].points;
        assert!(in_first >= 4);
        fs::remove_file(d.path().join(seg_name(0))).unwrap();
        let got = drain(&mut b, 100);
        assert_eq!(got.first(), Some(&(in_first as u32)), "{got:?}");
        assert_eq!(got.last(), Some(&19));
        assert_eq!(b.dropped_corrupt(), in_first - 2);
        // Even the whole directory.
        fs::remove_dir_all(d.path()).unwrap();
        b.append(&lines(20, 2), 2).unwrap();
        b.append(&lines(22, 300), 300).unwrap();
        let got = drain(&mut b, 1000);
        assert_eq!(got.last(), Some(&321), "{got:?}");
    }

    #[test]
    fn a_segment_without_the_magic_is_emptied() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(seg_name(4)), b"garbage!garbage").unwrap();
        let (mut b, rec) = Buffer::open(cfg(d.path(), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(rec.torn_records, 1);
        assert_eq!(rec.points, 0);
        b.append(&lines(1, 1), 1).unwrap();
        assert_eq!(drain(&mut b, 10), vec![1]);
    }
}
