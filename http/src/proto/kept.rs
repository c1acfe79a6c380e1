//! [`KeptFields`]: the response fields a worker asked a connection to keep
//! for its access log (Gunicorn's `%({name}o)s`), copied when the app starts
//! its response. The names are fixed for a worker's life
//! ([`ConnConfig::kept_response_fields`](crate::ConnConfig)), so a request
//! whose log names none costs nothing, and one that does reuses the same
//! two buffers request after request.

/// The values of the kept response fields of the current request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptFields {
    /// The values, one after the other.
    values: Vec<u8>,
    /// `(index of the name in the kept list, start, end)` of each value in
    /// `values`, in the app's order.
    spans: Vec<(usize, usize, usize)>,
}

impl KeptFields {
    /// Forget the previous request's values, keeping the allocations.
    pub fn clear(&mut self) {
        self.values.clear();
        self.spans.clear();
    }

    /// Keep the value of every field of `headers` whose name is in `names`
    /// (lower case; compared without regard to case).
    pub fn keep(&mut self, names: &[String], headers: &[(&str, &[u8])]) {
        self.clear();
        for (name, value) in headers {
            if let Some(index) = names
                .iter()
                .position(|kept| kept.eq_ignore_ascii_case(name))
            {
                let start = self.values.len();
                self.values.extend_from_slice(value);
                self.spans.push((index, start, self.values.len()));
            }
        }
    }

    /// The value of the kept name at `index`: the last field of that name,
    /// as Gunicorn's dict of response headers keeps the last.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.spans
            .iter()
            .rev()
            .find(|(kept, _, _)| *kept == index)
            .map(|&(_, start, end)| &self.values[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_named_fields_last_value_first() {
        let names = vec!["content-type".to_owned(), "x-trace".to_owned()];
        let mut kept = KeptFields::default();
        kept.keep(
            &names,
            &[
                ("Content-Type", b"text/plain"),
                ("Set-Cookie", b"a=1"),
                ("X-Trace", b"one"),
                ("x-trace", b"two"),
            ],
        );
        assert_eq!(kept.get(0), Some(&b"text/plain"[..]));
        assert_eq!(kept.get(1), Some(&b"two"[..]));
        assert_eq!(kept.get(2), None);
        kept.clear();
        assert_eq!(kept.get(0), None);
    }
}
