//! The rule for "this admin answer reports damage" (PROTOCOL.md §6, "admin"): a non-empty
//! top-level `problems` array in the answer's JSON, and nothing else.

use protocol::backend::MAX_PROBLEMS_LISTED;
use protocol::AdminOutput;
use serde_json::json;

fn answer(json: &str) -> AdminOutput {
    AdminOutput {
        text: String::new(),
        json: json.into(),
    }
}

#[test]
fn only_a_non_empty_top_level_problems_array_reports_damage() {
    for quiet in [
        "null",
        "not json",
        r#"[{"name":"help"}]"#,
        r#"{"blocks":3}"#,
        r#"{"problems":[]}"#,
        r#"{"problems":"a string is not a list"}"#,
        r#"{"inner":{"problems":["nested does not count"]}}"#,
    ] {
        assert_eq!(answer(quiet).problems(), Vec::<String>::new(), "{quiet}");
    }
    assert_eq!(
        answer(r#"{"records":9,"problems":["log 1 offset 7: bad",{"key":"ab"}]}"#).problems(),
        vec![
            "log 1 offset 7: bad".to_string(),
            r#"{"key":"ab"}"#.to_string()
        ]
    );
}

#[test]
fn a_checked_answer_always_has_the_array_and_lists_its_problems_in_the_text() {
    let clean = AdminOutput::checked("all sound\n", json!({"n": 1}), &[]);
    let v: serde_json::Value = serde_json::from_str(&clean.json).expect("json");
    assert_eq!(v, json!({"n": 1, "problems": []}));
    assert_eq!(clean.text, "all sound\n");

    let found = AdminOutput::checked("looked\n", json!({}), &["block ab: gone".into()]);
    assert_eq!(found.problems(), vec!["block ab: gone".to_string()]);
    assert!(found.text.contains("1 problem(s)") && found.text.contains("block ab: gone"));
}

#[test]
fn a_checked_answer_names_at_most_the_limit_and_counts_the_rest() {
    let many: Vec<String> = (0..MAX_PROBLEMS_LISTED + 5)
        .map(|i| format!("p{i}"))
        .collect();
    let out = AdminOutput::checked("", json!({}), &many).problems();
    assert_eq!(out.len(), MAX_PROBLEMS_LISTED + 1);
    assert_eq!(out[MAX_PROBLEMS_LISTED], "and 5 more problem(s) not listed");
}
