//! `join` and `group` inputs, as the platform's v1.13 datum iterators build
//! them.
//!
//! Both work on the *parts* of their inputs' datums, not on whole datums: a
//! datum of a `cross` below a `join` falls apart into its parts, each keyed by
//! its own `join_on` (or `group_by`).
//!
//! A join gathers, for each key in the order keys are first seen (input by
//! input, datum by datum), the parts each input has under that key. When
//! every input has some, the key makes the product of those lists, the first
//! input varying fastest. When an input has none, only the parts of inputs
//! marked `outer_join` are kept, and they make the product among themselves;
//! with none of those, the key makes no datum.
//!
//! A group makes one datum per key, keys in sorted order, holding every part
//! with that key: the first input's first, each input's in its datum order.

use std::collections::{BTreeMap, HashMap};

use super::{Keyed, Tuple};

/// The datums of a join of `inputs` (each input's planned datums).
pub(crate) fn join(inputs: Vec<Vec<Tuple>>) -> Vec<Tuple> {
    let n = inputs.len();
    let mut order: Vec<String> = Vec::new();
    let mut table: HashMap<String, Vec<Vec<Keyed>>> = HashMap::new();
    for (i, datums) in inputs.into_iter().enumerate() {
        for part in datums.into_iter().flatten() {
            let lists = table.entry(part.join_on.clone()).or_insert_with(|| {
                order.push(part.join_on.clone());
                vec![Vec::new(); n]
            });
            lists[i].push(part);
        }
    }
    let mut out = Vec::new();
    for key in order {
        let lists = table.remove(&key).unwrap_or_default();
        let lists: Vec<Vec<Keyed>> = if lists.iter().all(|l| !l.is_empty()) {
            lists
        } else {
            lists
                .into_iter()
                .map(|l| l.into_iter().filter(|p| p.outer_join).collect::<Vec<_>>())
                .filter(|l| !l.is_empty())
                .collect()
        };
        if !lists.is_empty() {
            out.extend(product_first_fastest(&lists));
        }
    }
    out
}

/// Every choice of one part per list, the first list varying fastest (the
/// order of the platform's cross of a join's lists).
fn product_first_fastest(lists: &[Vec<Keyed>]) -> Vec<Tuple> {
    let total: usize = lists.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    let mut at = vec![0usize; lists.len()];
    for _ in 0..total {
        out.push(
            lists
                .iter()
                .zip(&at)
                .map(|(list, &i)| list[i].clone())
                .collect(),
        );
        for (i, list) in lists.iter().enumerate() {
            at[i] += 1;
            if at[i] < list.len() {
                break;
            }
            at[i] = 0;
        }
    }
    out
}

/// The datums of a group of `inputs`: one per `group_by` key, sorted.
pub(crate) fn group(inputs: Vec<Vec<Tuple>>) -> Vec<Tuple> {
    let mut groups: BTreeMap<String, Tuple> = BTreeMap::new();
    for part in inputs.into_iter().flatten().flatten() {
        groups.entry(part.group_by.clone()).or_default().push(part);
    }
    groups.into_values().collect()
}
