//! The fast reader of an instant query's answer in the one shape Prometheus writes it:
//! compact JSON, `{"status":"success","data":{"resultType":"vector","result":[...]}}`, every
//! series `{"metric":{...},"value":[<time>,"<value>"]}`, no escapes in its strings.
//!
//! A rules-mode cycle over 10,000 SLOs reads about 80,000 such series (4.6 MiB), on the same
//! two cores on which Prometheus is still computing the other answers; the general reader
//! (serde, in `prometheus.rs`) spent most of serve's CPU of the wait there. This one walks
//! the bytes once. It reads an answer only where it is sure to read it exactly as the
//! general reader would, and gives up (`None`) on anything else: whitespace, an escaped
//! string, a warning, a histogram, a value that is not a number, another result type. The
//! general reader then reads the answer and says what is wrong with it, if anything.
//!
//! Owns: that shape. Must not touch: what an answer means (status codes, warnings, errors).

use crate::ports::{InstantSample, SeriesLabels};

/// Everything before the first series.
const HEAD: &[u8] = br#"{"status":"success","data":{"resultType":"vector","result":["#;

/// The series of an answer in the compact vector shape, or `None` if it is not exactly that.
pub fn read(body: &[u8]) -> Option<Vec<InstantSample>> {
    // One check of the whole body: every string sliced out of it below is then UTF-8.
    let body = std::str::from_utf8(body).ok()?;
    let mut at = Cursor {
        text: body,
        next: 0,
    };
    at.literal(HEAD)?;
    // A series takes at least 40 bytes; a guess at the count saves the list's regrowth.
    let mut samples = Vec::with_capacity(body.len() / 64);
    if !at.eat(b']') {
        loop {
            samples.push(at.series()?);
            if at.eat(b']') {
                break;
            }
            at.literal(b",")?;
        }
    }
    at.literal(b"}}")?;
    at.is_done().then_some(samples)
}

/// A position in the answer's text.
struct Cursor<'a> {
    text: &'a str,
    next: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.next..]
    }

    fn is_done(&self) -> bool {
        self.next == self.text.len()
    }

    /// Steps over `bytes` if they come next.
    fn literal(&mut self, bytes: &[u8]) -> Option<()> {
        self.rest()
            .starts_with(bytes)
            .then(|| self.next += bytes.len())
    }

    /// Steps over `byte` if it comes next, and says whether it did.
    fn eat(&mut self, byte: u8) -> bool {
        self.literal(&[byte]).is_some()
    }

    /// `{"metric":{...},"value":[<time>,"<value>"]}`
    fn series(&mut self) -> Option<InstantSample> {
        self.literal(br#"{"metric":{"#)?;
        let mut labels: smallvec::SmallVec<[(&str, &str); 4]> = smallvec::SmallVec::new();
        if !self.eat(b'}') {
            loop {
                let name = self.string()?;
                self.literal(b":")?;
                let value = self.string()?;
                labels.push((name, value));
                if self.eat(b'}') {
                    break;
                }
                self.literal(b",")?;
            }
        }
        self.literal(br#","value":["#)?;
        self.number()?;
        self.literal(b",")?;
        let value = self.string()?.parse::<f64>().ok()?;
        self.literal(b"]}")?;
        Some(InstantSample {
            labels: SeriesLabels::from_pairs(&labels),
            value,
        })
    }

    /// A string without escapes or control characters (which JSON forbids raw), as it
    /// stands between its quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let rest = self.rest();
        let length = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[length] != b'"' {
            return None;
        }
        let start = self.next;
        self.next += length + 1;
        // Quotes and backslashes are ASCII: these bounds fall between characters.
        Some(&self.text[start..start + length])
    }

    /// A JSON number that is a finite `f64` (the sample's time, which is not kept):
    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let rest = self.rest();
        let mut n = 0;
        let digits = |from: usize| {
            rest[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        if rest.first() == Some(&b'-') {
            n += 1;
        }
        let whole = digits(n);
        match whole {
            0 => return None,
            k if k > 1 && rest[n] == b'0' => return None,
            k => n += k,
        }
        if rest.get(n) == Some(&b'.') {
            match digits(n + 1) {
                0 => return None,
                k => n += 1 + k,
            }
        }
        let mut exponent = false;
        if matches!(rest.get(n), Some(b'e' | b'E')) {
            exponent = true;
            n += 1;
            if matches!(rest.get(n), Some(b'+' | b'-')) {
                n += 1;
            }
            match digits(n) {
                0 => return None,
                k => n += k,
            }
        }
        // Without an exponent, fewer than 300 whole digits are always a finite `f64`
        // (Prometheus writes `1765108800.123`); only other numbers are worth parsing.
        let finite = (!exponent && whole < 300)
            || self.text[self.next..self.next + n]
                .parse::<f64>()
                .is_ok_and(f64::is_finite);
        self.next += n;
        finite.then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::read;

    #[test]
    fn the_shape_prometheus_writes_is_read_and_anything_else_left_to_the_general_reader() {
        let samples = read(
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"slo":"checkout","route":"/pay"},"value":[1733580000.123,"0.0002"]},{"metric":{},"value":[1,"NaN"]}]}}"#,
        )
        .expect("the compact shape");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].labels.get("slo"), Some("checkout"));
        assert_eq!(samples[0].labels.get("route"), Some("/pay"));
        assert_eq!(samples[0].value, 0.0002);
        assert!(samples[1].labels.is_empty());
        assert!(samples[1].value.is_nan());
        let tiny = read(
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1e-400,"1"]}]}}"#,
        );
        assert_eq!(tiny.map(|s| s.len()), Some(1));
        let empty = read(br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert_eq!(empty.map(|s| s.len()), Some(0));

        for other in [
            // Whitespace, an escape, a warning, a histogram, a value that is not a number, a
            // time that JSON does not allow, a scalar, a truncated body, trailing bytes.
            r#"{"status":"success","data":{"resultType":"vector","result":[ ]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"slo":"a\"b"},"value":[1,"1"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["x"]}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"lots"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[01,"1"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.,"1"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1e400,"1"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}x"#,
        ] {
            assert!(read(other.as_bytes()).is_none(), "{other}");
        }
        // Bytes that are not UTF-8 are left to the general reader, which refuses them.
        let mut invalid =
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"slo":"x"#
                .to_vec();
        invalid.extend_from_slice(&[0xff, 0xfe]);
        invalid.extend_from_slice(br#""},"value":[1,"1"]}]}}"#);
        assert!(read(&invalid).is_none());
    }

    /// A fleet's answer (10,000 series, each its own SLO and value, one label of 64 KiB) is
    /// read series for series as the general reader reads the same answer.
    #[test]
    fn a_fleet_s_answer_is_read_as_the_general_reader_reads_it() {
        use crate::adapters::prometheus::instant_answer;
        let series: Vec<String> = (0..10_000)
            .map(|i| {
                let slo = if i == 7 { "l".repeat(65_536) } else { format!("shop-{i:05}") };
                format!(r#"{{"metric":{{"service":"shop","slo":"{slo}"}},"value":[1765108800.123,"{}"]}}"#, i as f64 / 1e7)
            })
            .collect();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            series.join(",")
        );
        let compact = read(body.as_bytes()).expect("the compact shape");
        // One space after the list's bracket: JSON-equal, and only the general reader takes it.
        let spaced = body.replacen(r#""result":["#, r#""result":[ "#, 1);
        assert!(read(spaced.as_bytes()).is_none());
        let general = instant_answer(200, spaced.as_bytes(), 10).expect("a valid answer");
        assert_eq!(compact.len(), 10_000);
        assert_eq!(compact, general);
        assert_eq!(compact[9_999].labels.get("slo"), Some("shop-09999"));
        assert_eq!(compact[9_999].value, 9_999.0 / 1e7);
        assert_eq!(compact[7].labels.get("slo").map(str::len), Some(65_536));
    }
}
