//! How many runners of a verification must answer, and what an answer that did not come
//! costs: an engine that cannot be reached costs its runner (the rest may still decide);
//! a build that fails fails the verification, and is never retried elsewhere (that would
//! hide nondeterminism).

/// What a runner's failure means for the verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// The runner did not answer: counted as unavailable, its breaker records it.
    Runner,
    /// The verification fails.
    Verification,
}

/// The cost of a runner's failure, by whether it was the infrastructure's.
pub fn cost(infrastructure: bool) -> Cost {
    if infrastructure {
        Cost::Runner
    } else {
        Cost::Verification
    }
}

/// The runners that must answer and agree: as asked (default all), never fewer than two
/// (one runner agrees with itself) nor more than there are.
pub fn required(asked: Option<usize>, runners: usize) -> usize {
    asked.unwrap_or(runners).clamp(2, runners.max(2))
}

/// Why the answers cannot decide, if they cannot: the reference must answer (the others
/// are compared with it), and at least `required` runners.
pub fn short(
    reference_answered: bool,
    answered: usize,
    asked: usize,
    required: usize,
) -> Option<String> {
    (!reference_answered || answered < required).then(|| {
        format!(
            "quorum not reachable: {answered} of {asked} runner(s) answered, {required} needed{}",
            if reference_answered {
                ""
            } else {
                " (the reference runner did not answer)"
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_costs_its_runner_a_build_costs_the_verification() {
        assert_eq!(cost(true), Cost::Runner);
        assert_eq!(cost(false), Cost::Verification);
    }

    #[test]
    fn the_quorum_is_bounded_and_needs_the_reference() {
        assert_eq!(required(None, 3), 3);
        assert_eq!(required(Some(1), 3), 2);
        assert_eq!(required(Some(9), 3), 3);
        assert_eq!(short(true, 2, 3, 2), None);
        let s = short(true, 1, 3, 2).expect("short");
        assert!(s.contains("1 of 3 runner(s) answered, 2 needed"), "{s}");
        let s = short(false, 3, 3, 2).expect("no reference");
        assert!(s.contains("the reference runner did not answer"), "{s}");
    }
}
