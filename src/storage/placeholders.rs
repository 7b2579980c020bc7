//! Bound-value placeholders for statements whose length follows their
//! input (multi-row inserts, `IN` lists), in SQL both backends accept.

/// Placeholders `($1, …, $k), ($k+1, …)` for `rows` rows of `columns`;
/// `(?, …), (?, …)` when `numbered` is false.
pub(crate) fn value_rows(rows: usize, columns: usize, numbered: bool) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| match numbered {
                    true => format!("${}", r * columns + c),
                    false => "?".to_string(),
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders `$1, …, $n` of an `IN` list.
pub(crate) fn list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn value_rows_number_every_placeholder() {
        assert_eq!(super::value_rows(2, 3, true), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::value_rows(1, 2, false), "(?, ?)");
        assert_eq!(super::list(3), "$1, $2, $3");
    }
}
