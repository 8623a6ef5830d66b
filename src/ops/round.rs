//! Ratios in answers: a load of 0.006842619745845552 reads as 0.0068. Rounding happens when an
//! answer is written, never in the arithmetic the planners compare.

use serde::Serializer;

/// Serializes a ratio with four decimals (a hundredth of a percent).
///
/// # Errors
/// Only the serializer's own.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's serialize_with passes a reference
pub(crate) fn ratio<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(if x.is_finite() {
        (x * 10_000.0).round() / 10_000.0
    } else {
        *x
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ratios_keep_four_decimals() {
        let mut out = Vec::new();
        let mut s = serde_json::Serializer::new(&mut out);
        super::ratio(&0.006_842_619_745_845_552, &mut s).expect("serializes");
        assert_eq!(String::from_utf8(out).expect("utf8"), "0.0068");
        let v: Vec<String> = [1.390_625, 0.0, 2.0]
            .iter()
            .map(|x| {
                let mut out = Vec::new();
                super::ratio(x, &mut serde_json::Serializer::new(&mut out)).expect("serializes");
                String::from_utf8(out).expect("utf8")
            })
            .collect();
        assert_eq!(v, ["1.3906", "0.0", "2.0"]);
    }
}
