//! The platform's glob dialect, with capture groups.
//!
//! The platform (v1.13) matches a pfs input's glob against every path of the
//! repo with a glob library that turns the glob into a backtracking regular
//! expression, and uses the same expression's capture groups to compute
//! `join_on` and `group_by`. This module reproduces that dialect:
//!
//! | glob | meaning |
//! |---|---|
//! | `?` | one character other than `/` |
//! | `*` | any run of characters other than `/` |
//! | `**` | any run of characters, `/` included |
//! | `[abc]`, `[a-z]`, `[!a]`, `[^a]`, `[[:alpha:]]` | one character of (or not of) a class; a class may match `/`; its first `!` or `^`, wherever it stands, negates it |
//! | `{a,b}` | one of the comma-separated patterns (no capture) |
//! | `(a\|b)`, `@(a\|b)` | one of the patterns, captured |
//! | `?(…)`, `*(…)`, `+(…)` | zero or one, any number, one or more of the patterns, captured |
//! | `!(…)` | anything but the patterns, captured |
//! | `\c` | the character `c` itself |
//!
//! Capture groups are numbered by their opening parenthesis, from 1 (`$0` is
//! the whole path). The matcher is a small backtracking engine over the
//! glob's tree, so greedy repetition, leftmost alternatives and the captures
//! they leave are those a backtracking regular expression would give; a
//! negation `!(…)` is a negative look-ahead that extends to the end of the
//! path unless text, `*` or `**` follows it in the pattern, as the platform's
//! library does. Its quirks are kept on purpose (a `,` or `}` right after a
//! lone `@`, `!` or `+` is plain text; a close bracket closes the innermost
//! open group whatever its kind; an unclosed group ends with the pattern).

use std::fmt;

/// `/`, the only separator of repo paths.
const SEP: char = '/';

/// Backtracking steps one match may take before it is given up as too costly
/// (a pathological pattern, e.g. nested repetitions over a long path).
const STEP_BUDGET: u64 = 5_000_000;

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    source: String,
    top: Vec<Re>,
    groups: usize,
    /// Whether a negation's look-ahead must reach the end of the path.
    neg_to_end: bool,
}

/// Why a glob does not compile, or a match could not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobError(pub String);

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GlobError {}

/// The longest glob compiled, in characters.
pub const MAX_GLOB_LEN: usize = 1024;
/// The deepest nesting of groups and alternatives in a glob.
pub const MAX_GLOB_DEPTH: usize = 64;

/// Compiling and matching recurse over the glob's nesting: an absurdly long
/// or deep glob is refused before it could exhaust the stack.
fn check_size(pattern: &str) -> Result<(), GlobError> {
    let len = pattern.chars().count();
    if len > MAX_GLOB_LEN {
        return Err(GlobError(format!(
            "the glob is {len} characters long; at most {MAX_GLOB_LEN} are allowed"
        )));
    }
    let (mut depth, mut deepest, mut escaped) = (0usize, 0usize, false);
    for c in pattern.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '(' | '{' | '[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, ')' | '}' | ']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_GLOB_DEPTH {
        return Err(GlobError(format!(
            "the glob nests groups {deepest} deep; at most {MAX_GLOB_DEPTH} are allowed"
        )));
    }
    Ok(())
}

impl Glob {
    /// Compiles `pattern` as it is (see [`clean`] for the platform's
    /// normalisation of a pfs glob).
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        check_size(pattern)?;
        let tree = Parser::new(pattern).parse()?;
        let mut compiler = Compiler::default();
        let top = compiler.seq(&tree)?;
        let neg_to_end = match compiler.first_negation_end {
            Some(at) => compiler.last_boundary.is_none_or(|b| b < at),
            None => false,
        };
        Ok(Glob {
            source: pattern.to_string(),
            top,
            groups: compiler.groups,
            neg_to_end,
        })
    }

    /// The pattern this glob was made from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// How many capture groups the pattern has.
    pub fn group_count(&self) -> usize {
        self.groups
    }

    /// Whether the whole of `path` matches.
    pub fn is_match(&self, path: &str) -> Result<bool, GlobError> {
        Ok(self.captures(path)?.is_some())
    }

    /// The whole path and every capture group (`""` for a group that took no
    /// part in the match), or `None` when the path does not match.
    pub fn captures(&self, path: &str) -> Result<Option<Vec<String>>, GlobError> {
        let text: Vec<char> = path.chars().collect();
        let mut state = State {
            text: &text,
            caps: vec![None; self.groups + 1],
            steps: 0,
            neg_to_end: self.neg_to_end,
            exhausted: false,
        };
        let mut done: Option<Vec<Option<(usize, usize)>>> = None;
        let matched = state.seq(&self.top, 0, &mut |pos, st| {
            if pos == st.text.len() {
                done = Some(st.caps.clone());
                true
            } else {
                false
            }
        });
        if state.exhausted {
            return Err(GlobError(format!(
                "the glob `{}` takes too long to match `{path}`; simplify it \
                 (fewer nested repetitions)",
                self.source
            )));
        }
        if !matched {
            return Ok(None);
        }
        let caps = done.unwrap_or_default();
        let mut out = vec![path.to_string()];
        for cap in caps.iter().skip(1) {
            out.push(match cap {
                Some((from, to)) => text[*from..*to].iter().collect(),
                None => String::new(),
            });
        }
        Ok(Some(out))
    }

    /// Expands `template` with the groups `path` captures, as the platform
    /// computes `join_on` and `group_by`: `$n` and `${n}` are group `n`
    /// (`$0` the whole path; a group the pattern lacks, or a path that does
    /// not match, gives nothing), `$$` is `$`, any other `$` is itself.
    pub fn replace(&self, path: &str, template: &str) -> Result<String, GlobError> {
        let captures = self.captures(path)?.unwrap_or_default();
        Ok(expand(template, &captures))
    }
}

/// Expands `$n`, `${n}` and `$$` in `template` with `captures`.
pub fn expand(template: &str, captures: &[String]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with("$$") {
            out.push('$');
            rest = &rest[2..];
            continue;
        }
        match reference(rest) {
            Some((group, after)) => {
                if let Some(text) = group.and_then(|g| captures.get(g)) {
                    out.push_str(text);
                }
                rest = after;
            }
            None => {
                out.push('$');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Group numbers that `template` refers to (`$n` or `${n}`).
pub fn references(template: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        rest = &rest[at..];
        if rest.starts_with("$$") {
            rest = &rest[2..];
            continue;
        }
        match reference(rest) {
            Some((group, after)) => {
                out.extend(group);
                rest = after;
            }
            None => rest = &rest[1..],
        }
    }
    out
}

/// Reads `$n` or `${n}` at the start of `s`: the group (`None` for a number
/// with a leading zero or too large, which expands to nothing) and the rest.
fn reference(s: &str) -> Option<(Option<usize>, &str)> {
    let body = s.strip_prefix('$')?;
    let (body, braced) = match body.strip_prefix('{') {
        Some(b) => (b, true),
        None => (body, false),
    };
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (number, mut rest) = body.split_at(digits);
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    let group = if number.len() > 1 && number.starts_with('0') {
        None
    } else {
        number.parse::<usize>().ok().filter(|n| *n < 100_000_000)
    };
    Some((group, rest))
}

/// The platform's normalisation of a pfs glob before it is matched: a
/// leading `/`, and the path cleaned (no empty, `.` or `..` parts, no
/// trailing `/`). `/` stays `/` (the whole repo). `None` when blank.
pub fn clean(glob: &str) -> Option<String> {
    let glob = glob.trim();
    if glob.is_empty() {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in glob.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

// ----- parsing ----------------------------------------------------------------

/// A node of the glob's tree.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// `*`
    Any,
    /// `**`
    Super,
    /// `?`
    Single,
    Class(Class),
    /// `{a,b}`: alternatives, not captured.
    AnyOf(Vec<Vec<Node>>),
    /// `(…)` and the extended globs: alternatives, captured.
    Capture(Quantifier, Vec<Vec<Node>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    One,
    ZeroOrOne,
    Any,
    OneOrMore,
    Not,
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

#[derive(Debug, Clone, PartialEq)]
enum ClassItem {
    Char(char),
    Range(char, char),
    Posix(String),
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let hit = self.items.iter().any(|item| match item {
            ClassItem::Char(x) => *x == c,
            ClassItem::Range(lo, hi) => (*lo..=*hi).contains(&c),
            ClassItem::Posix(name) => posix(name, c),
        });
        hit != self.negated
    }
}

fn posix(name: &str, c: char) -> bool {
    match name {
        "alnum" => c.is_ascii_alphanumeric(),
        "alpha" => c.is_ascii_alphabetic(),
        "ascii" => c.is_ascii(),
        "blank" => c == ' ' || c == '\t',
        "cntrl" => c.is_ascii_control(),
        "digit" => c.is_ascii_digit(),
        "graph" => c.is_ascii_graphic(),
        "lower" => c.is_ascii_lowercase(),
        "print" => c.is_ascii_graphic() || c == ' ',
        "punct" => c.is_ascii_punctuation(),
        "space" => c.is_ascii_whitespace() || c == '\x0b',
        "upper" => c.is_ascii_uppercase(),
        "word" => c.is_ascii_alphanumeric() || c == '_',
        "xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Characters that end a run of text outside any group.
const TEXT_BREAKERS: &[char] = &['?', '*', '[', '{', '(', '@', '!', '^', '+'];
/// After a lone `@`, `!`, `^` or `+`: the shorter list the platform uses.
const BASIC_BREAKERS: &[char] = &['?', '*', '[', '{', '('];

/// A group being parsed: its kind and its alternatives so far.
struct Frame {
    kind: FrameKind,
    alts: Vec<Vec<Node>>,
}

enum FrameKind {
    Root,
    AnyOf,
    Capture(Quantifier),
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    terms: usize,
    captures: usize,
    stack: Vec<Frame>,
}

impl Parser {
    fn new(pattern: &str) -> Parser {
        Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            terms: 0,
            captures: 0,
            stack: vec![Frame {
                kind: FrameKind::Root,
                alts: vec![Vec::new()],
            }],
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn push(&mut self, node: Node) {
        let frame = self.stack.last_mut().expect("the root frame");
        frame.alts.last_mut().expect("an alternative").push(node);
    }

    fn open(&mut self, kind: FrameKind) {
        match kind {
            FrameKind::AnyOf => self.terms += 1,
            FrameKind::Capture(_) => self.captures += 1,
            FrameKind::Root => {}
        }
        self.stack.push(Frame {
            kind,
            alts: vec![Vec::new()],
        });
    }

    /// Closes the innermost open group, whatever its kind (as the platform's
    /// parser does), and adds it to its parent.
    fn close_innermost(&mut self) {
        if self.stack.len() < 2 {
            return;
        }
        let frame = self.stack.pop().expect("checked");
        let node = match frame.kind {
            FrameKind::AnyOf => Node::AnyOf(frame.alts),
            FrameKind::Capture(q) => Node::Capture(q, frame.alts),
            FrameKind::Root => unreachable!("the root is never popped"),
        };
        self.push(node);
    }

    fn separator(&mut self) {
        if self.stack.len() >= 2 {
            self.stack
                .last_mut()
                .expect("checked")
                .alts
                .push(Vec::new());
        }
    }

    fn parse(mut self) -> Result<Vec<Node>, GlobError> {
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '{' => self.open(FrameKind::AnyOf),
                ',' if self.terms > 0 => self.separator(),
                '}' if self.terms > 0 => {
                    self.terms -= 1;
                    self.close_innermost();
                }
                '|' if self.captures > 0 => self.separator(),
                ')' if self.captures > 0 => {
                    self.captures -= 1;
                    self.close_innermost();
                }
                '[' => {
                    let class = self.class()?;
                    self.push(Node::Class(class));
                }
                '(' => self.open(FrameKind::Capture(Quantifier::One)),
                '@' | '!' | '^' | '+' => {
                    if self.peek() == Some('(') {
                        self.pos += 1;
                        let q = match c {
                            '@' => Quantifier::One,
                            '!' => Quantifier::Not,
                            '+' => Quantifier::OneOrMore,
                            _ => {
                                return Err(GlobError(
                                    "`^(` is not a pattern the platform knows; \
                                     write `!(…)` for \"anything but\""
                                        .into(),
                                ))
                            }
                        };
                        self.open(FrameKind::Capture(q));
                    } else {
                        self.pos -= 1;
                        self.text(BASIC_BREAKERS);
                    }
                }
                '?' => {
                    if self.peek() == Some('(') {
                        self.pos += 1;
                        self.open(FrameKind::Capture(Quantifier::ZeroOrOne));
                    } else {
                        self.push(Node::Single);
                    }
                }
                '*' => match self.peek() {
                    Some('*') => {
                        if self.chars.get(self.pos + 1) == Some(&'(') {
                            // `**(…)` is `*` then `*(…)`.
                            self.push(Node::Any);
                        } else {
                            self.pos += 1;
                            self.push(Node::Super);
                        }
                    }
                    Some('(') => {
                        self.pos += 1;
                        self.open(FrameKind::Capture(Quantifier::Any));
                    }
                    _ => self.push(Node::Any),
                },
                _ => {
                    self.pos -= 1;
                    let breakers: Vec<char> = if self.terms > 0 {
                        TEXT_BREAKERS.iter().copied().chain(['}', ',']).collect()
                    } else if self.captures > 0 {
                        TEXT_BREAKERS.iter().copied().chain([')', '|']).collect()
                    } else {
                        TEXT_BREAKERS.to_vec()
                    };
                    self.text(&breakers);
                }
            }
        }
        while self.stack.len() > 1 {
            self.close_innermost();
        }
        let mut root = self.stack.pop().expect("the root frame");
        Ok(root.alts.pop().unwrap_or_default())
    }

    /// Plain text up to the next breaker; `\` makes the next character plain.
    fn text(&mut self, breakers: &[char]) {
        let mut out = String::new();
        let mut escaped = false;
        let mut first = true;
        while let Some(c) = self.peek() {
            if !escaped {
                if c == '\\' {
                    escaped = true;
                    self.pos += 1;
                    first = false;
                    continue;
                }
                // The character that started this text is never a breaker
                // of it (a lone `@`, `!`, `^` or `+`).
                if !first && breakers.contains(&c) {
                    break;
                }
            }
            escaped = false;
            first = false;
            out.push(c);
            self.pos += 1;
        }
        if !out.is_empty() {
            self.push(Node::Text(out));
        }
    }

    /// A character class; the `[` is read.
    fn class(&mut self) -> Result<Class, GlobError> {
        let start = self.pos - 1;
        let mut negated = false;
        let mut raw: Vec<(char, bool)> = Vec::new(); // (char, escaped)
        let mut in_posix = false;
        let mut escaped = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(GlobError(format!(
                    "the class opened at character {} is never closed with `]`",
                    start + 1
                )));
            };
            self.pos += 1;
            if !escaped {
                if c == '\\' {
                    escaped = true;
                    continue;
                }
                if c == '[' {
                    in_posix = true;
                }
                if c == ']' {
                    if in_posix {
                        in_posix = false;
                    } else {
                        break;
                    }
                }
                if !negated && (c == '!' || c == '^') {
                    negated = true;
                    continue;
                }
            }
            raw.push((c, escaped));
            escaped = false;
        }
        if raw.is_empty() {
            return Err(GlobError(format!(
                "the class at character {} is empty; write at least one character \
                 between `[` and `]`",
                start + 1
            )));
        }
        let mut items = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let (c, esc) = raw[i];
            if c == '[' && !esc && raw.get(i + 1).is_some_and(|(n, _)| *n == ':') {
                let rest: String = raw[i + 2..].iter().map(|(c, _)| *c).collect();
                if let Some(end) = rest.find(":]") {
                    let name = rest[..end].to_string();
                    if !POSIX_CLASSES.contains(&name.as_str()) {
                        return Err(GlobError(format!(
                            "`[:{name}:]` is not a character class; use one of {}",
                            POSIX_CLASSES.join(", ")
                        )));
                    }
                    i += 2 + name.chars().count() + 2;
                    items.push(ClassItem::Posix(name));
                    continue;
                }
            }
            if i + 2 < raw.len() && raw[i + 1].0 == '-' {
                let hi = raw[i + 2].0;
                if hi < c {
                    return Err(GlobError(format!(
                        "the range `{c}-{hi}` runs backwards; write `{hi}-{c}`"
                    )));
                }
                items.push(ClassItem::Range(c, hi));
                i += 3;
                continue;
            }
            items.push(ClassItem::Char(c));
            i += 1;
        }
        Ok(Class { negated, items })
    }
}

// ----- compiling ----------------------------------------------------------------

/// A node of the matcher: the regular expression the platform's library
/// would build, as a tree.
#[derive(Debug, Clone)]
enum Re {
    Lit(char),
    /// `[^/]`
    NotSep,
    /// `.`: anything but a newline.
    Dot,
    Class(Class),
    /// Alternatives, captured as group `n` when `Some(n)`.
    Group(Option<usize>, Vec<Vec<Re>>),
    /// Greedy repetitions of a sub-expression: `?`, `*`, `+`.
    Repeat(Box<Re>, usize, bool),
    /// `(?!…)`: none of the alternatives matches here.
    NotAhead(Vec<Vec<Re>>),
    /// Where a negation's alternatives end: the end of the path when the
    /// pattern bounds nothing after its first negation, else nothing.
    NegationEnd,
}

#[derive(Default)]
struct Compiler {
    groups: usize,
    /// A counter of things emitted, in the order of the regular expression.
    at: usize,
    last_boundary: Option<usize>,
    first_negation_end: Option<usize>,
}

impl Compiler {
    fn tick(&mut self) -> usize {
        self.at += 1;
        self.at
    }

    fn boundary(&mut self) {
        let at = self.tick();
        self.last_boundary = Some(at);
    }

    fn seq(&mut self, nodes: &[Node]) -> Result<Vec<Re>, GlobError> {
        let mut out = Vec::new();
        for node in nodes {
            match node {
                Node::Text(text) => {
                    out.extend(text.chars().map(Re::Lit));
                    self.boundary();
                }
                Node::Any => {
                    out.push(Re::Repeat(Box::new(Re::NotSep), 0, true));
                    self.boundary();
                }
                Node::Super => {
                    out.push(Re::Repeat(Box::new(Re::Dot), 0, true));
                    self.boundary();
                }
                Node::Single => out.push(Re::NotSep),
                Node::Class(class) => out.push(Re::Class(class.clone())),
                Node::AnyOf(alts) => {
                    let alts = alts
                        .iter()
                        .map(|a| self.seq(a))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.push(Re::Group(None, alts));
                }
                Node::Capture(q, alts) => {
                    self.groups += 1;
                    let n = self.groups;
                    self.tick();
                    if *q == Quantifier::Not {
                        let mut inner = Vec::new();
                        for (i, alt) in alts.iter().enumerate() {
                            let mut a = self.seq(alt)?;
                            a.push(Re::NegationEnd);
                            let at = self.tick();
                            if i + 1 == alts.len() && self.first_negation_end.is_none() {
                                self.first_negation_end = Some(at);
                            }
                            inner.push(a);
                        }
                        out.push(Re::Group(
                            Some(n),
                            vec![vec![
                                Re::NotAhead(inner),
                                Re::Repeat(Box::new(Re::NotSep), 0, true),
                            ]],
                        ));
                        continue;
                    }
                    let alts = alts
                        .iter()
                        .map(|a| self.seq(a))
                        .collect::<Result<Vec<_>, _>>()?;
                    if *q == Quantifier::One {
                        out.push(Re::Group(Some(n), alts));
                        continue;
                    }
                    let body = Re::Group(None, alts);
                    let inner = match q {
                        Quantifier::One | Quantifier::Not => unreachable!("handled above"),
                        Quantifier::ZeroOrOne => Re::Repeat(Box::new(body), 0, false),
                        Quantifier::Any => Re::Repeat(Box::new(body), 0, true),
                        Quantifier::OneOrMore => Re::Repeat(Box::new(body), 1, true),
                    };
                    out.push(Re::Group(Some(n), vec![vec![inner]]));
                }
            }
        }
        Ok(out)
    }
}

// ----- matching -----------------------------------------------------------------

type Caps = Vec<Option<(usize, usize)>>;

struct State<'a> {
    text: &'a [char],
    caps: Caps,
    steps: u64,
    neg_to_end: bool,
    exhausted: bool,
}

type Cont<'k, 'a> = dyn FnMut(usize, &mut State<'a>) -> bool + 'k;

impl<'a> State<'a> {
    fn step(&mut self) -> bool {
        self.steps += 1;
        if self.steps > STEP_BUDGET {
            self.exhausted = true;
        }
        !self.exhausted
    }

    fn seq(&mut self, seq: &[Re], pos: usize, k: &mut Cont<'_, 'a>) -> bool {
        match seq.split_first() {
            None => k(pos, self),
            Some((first, rest)) => {
                self.node(first, pos, &mut |p, st: &mut State<'a>| st.seq(rest, p, k))
            }
        }
    }

    fn node(&mut self, re: &Re, pos: usize, k: &mut Cont<'_, 'a>) -> bool {
        if !self.step() {
            return false;
        }
        let here = self.text.get(pos).copied();
        match re {
            Re::Lit(c) => here == Some(*c) && k(pos + 1, self),
            Re::NotSep => here.is_some_and(|c| c != SEP) && k(pos + 1, self),
            Re::Dot => here.is_some_and(|c| c != '\n') && k(pos + 1, self),
            Re::Class(class) => here.is_some_and(|c| class.matches(c)) && k(pos + 1, self),
            Re::NegationEnd => (!self.neg_to_end || pos == self.text.len()) && k(pos, self),
            Re::Group(cap, alts) => {
                for alt in alts {
                    let ok = self.seq(alt, pos, &mut |p, st: &mut State<'a>| match cap {
                        Some(n) => {
                            let old = st.caps[*n];
                            st.caps[*n] = Some((pos, p));
                            if k(p, st) {
                                return true;
                            }
                            st.caps[*n] = old;
                            false
                        }
                        None => k(p, st),
                    });
                    if ok {
                        return true;
                    }
                    if self.exhausted {
                        return false;
                    }
                }
                false
            }
            Re::Repeat(inner, min, many) => self.repeat(inner, *min, *many, pos, k),
            Re::NotAhead(alts) => {
                let saved = self.caps.clone();
                let group = Re::Group(None, alts.clone());
                let found = self.node(&group, pos, &mut |_, _| true);
                self.caps = saved;
                if self.exhausted {
                    return false;
                }
                !found && k(pos, self)
            }
        }
    }

    /// Greedy: as many times as possible first. An iteration that consumes
    /// nothing ends the repetition (it could go on for ever).
    fn repeat(
        &mut self,
        inner: &Re,
        min: usize,
        many: bool,
        pos: usize,
        k: &mut Cont<'_, 'a>,
    ) -> bool {
        let ok = self.node(inner, pos, &mut |p, st: &mut State<'a>| {
            if p == pos && min == 0 {
                return false;
            }
            if many {
                st.repeat(inner, min.saturating_sub(1), true, p, k)
            } else {
                k(p, st)
            }
        });
        if ok || self.exhausted {
            return ok;
        }
        min == 0 && k(pos, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_globs_are_refused_not_a_stack_overflow() {
        for pattern in ["(".repeat(300_000), "{".repeat(5_000), "a".repeat(2_000)] {
            let err = Glob::new(&pattern).unwrap_err();
            assert!(err.0.contains("at most"), "{err}");
        }
        assert!(Glob::new(&"(a)".repeat(60)).is_ok());
    }

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).unwrap().is_match(path).unwrap()
    }

    fn caps(pattern: &str, path: &str) -> Vec<String> {
        let mut all = Glob::new(pattern)
            .unwrap()
            .captures(path)
            .unwrap()
            .unwrap_or_else(|| panic!("{pattern} does not match {path}"));
        all.remove(0);
        all
    }

    #[test]
    fn wildcards_and_separators() {
        assert!(m("/*", "/a.txt"));
        assert!(!m("/*", "/a/b.txt"));
        assert!(m("/*/*", "/a/b.txt"));
        assert!(m("/**", "/a/b/c.txt"));
        assert!(m("/**.txt", "/a/b/c.txt"));
        assert!(!m("/**.txt", "/a/b/c.csv"));
        assert!(m("/foo?1", "/foo21"));
        assert!(!m("/foo?1", "/foo1"));
        assert!(!m("/a?b", "/a/b"));
        assert!(m("/*.txt", "/.hidden.txt"));
        assert!(!m("/a", "/ab"), "the whole path must match");
    }

    #[test]
    fn classes() {
        assert!(m("/[abc].txt", "/b.txt"));
        assert!(!m("/[abc].txt", "/d.txt"));
        assert!(m("/[a-c]x", "/bx"));
        assert!(m("/[!a-c]x", "/dx"));
        assert!(!m("/[!a-c]x", "/ax"));
        assert!(m("/[^a-c]x", "/dx"));
        assert!(m("/[[:digit:]][[:alpha:]]", "/1z"));
        assert!(!m("/[[:digit:]]", "/z"));
        assert!(m("/[a\\]]", "/]"));
        assert!(m("/[-a]", "/-"));
        // A class is not bounded by `/`, as on the platform.
        assert!(m("/a[!x]b", "/a/b"));
        assert!(Glob::new("/[a").is_err());
        assert!(Glob::new("/[]").is_err());
        assert!(Glob::new("/[z-a]").is_err());
        assert!(Glob::new("/[[:nope:]]").is_err());
    }

    #[test]
    fn braces_are_alternatives_without_capture() {
        let g = Glob::new("/{a,b}/(*)").unwrap();
        assert_eq!(g.group_count(), 1);
        assert_eq!(caps("/{a,b}/(*)", "/b/x"), ["x"]);
        assert!(!m("/{a,b}/*", "/c/x"));
        assert!(m("/{x,z}/*", "/z/3"));
        assert!(m("/{a,}b", "/b"));
        // A comma outside braces is text.
        assert!(m("/a,b", "/a,b"));
    }

    #[test]
    fn extended_globs() {
        assert!(m("/@(a|b).txt", "/a.txt"));
        assert!(!m("/@(a|b).txt", "/ab.txt"));
        assert!(m("/*(a|b).txt", "/.txt"));
        assert!(m("/*(a|b).txt", "/abba.txt"));
        assert!(m("/+(a|b).txt", "/ab.txt"));
        assert!(!m("/+(a|b).txt", "/.txt"));
        assert!(m("/?(a|b).txt", "/.txt"));
        assert!(!m("/?(a|b).txt", "/ab.txt"));
        assert!(m("para+([0-9])", "para987346523"));
        assert!(!m("para+([0-9])", "para"));
        assert!(m("*(f*(o))", "fooofoofofooo"));
        assert!(!m("*(f*(o))", "xfoooofof"));
        assert!(m("@(b+(c)d|e*(f)g?|?(h)i@(j|k))", "effgz"));
        assert!(!m("@(b+(c)d|e+(f)g?|?(h)i@(j|k))", "egz"));
        assert!(m("ab**(e|f)g", "abcfefg"));
        assert!(!m("ab**(e|f)g", "abef"));
        // Lone extglob characters are text.
        assert!(m("/a@b+c!d", "/a@b+c!d"));
        assert!(Glob::new("/^(a)").is_err());
    }

    #[test]
    fn negations() {
        // From the platform's library tests.
        for (want, pattern, path) in [
            (false, "!(*.js|*.json)", "a.js"),
            (true, "!(*.js|*.json)", "a.js.gz"),
            (true, "a*!(x)", "a"),
            (true, "a*!(x)", "ax"),
            (false, "a*!(x)", "ba"),
            (true, "a!(x)", "ab"),
            (false, "a!(x)", "ax"),
            (false, "!(foo)", "foo"),
            (true, "!(!(foo))", "foo"),
            (false, "!(foo)*", "foobar"),
            (false, "!(*.*).!(*.*)", "moo.cow"),
            (true, "*.!(js|css)", "bar.min.js"),
            (false, "*.!(js)*.!(xy)", "asd.js.xyz"),
            (true, "*-!(integration-)test.js", "a-integration-test.js"),
            (false, "*-!(integration)-test.js", "a-integration-test.js"),
            (true, "!(f)", "fff"),
            (false, "!(f)", "f"),
            (true, "@(!(z*)|*x)", "zoox"),
            (false, "@(!(z*)|*x)", "zoot"),
        ] {
            assert_eq!(m(pattern, path), want, "{pattern} on {path}");
        }
        assert!(!m("/!(x)", "/foo/bar"), "a negation does not cross `/`");
        assert!(m("/!(*.txt)", "/a.csv"));
        assert!(!m("/!(*.txt)", "/a.txt"));
    }

    #[test]
    fn captures_numbered_by_opening_parenthesis() {
        // The platform's documentation, on /foo/bar-123/ABC.txt.
        let path = "/foo/bar-123/ABC.txt";
        assert_eq!(caps("/(*)/**", path), ["foo"]);
        assert_eq!(caps("/*/bar-(*)/*", path), ["123"]);
        assert_eq!(caps("/(*)/*/(??)*.txt", path), ["foo", "AB"]);
        assert_eq!(caps("/*/(bar-(123))/*", path), ["bar-123", "123"]);
        // The platform's library tests.
        assert_eq!(caps("test/a*(a|b)/x.go", "test/aba/x.go"), ["ba"]);
        assert_eq!(caps("test/+(a|b)/(*).go", "test/ab/x.go"), ["ab", "x"]);
        assert_eq!(caps("test/a*(a|b)/*(*).go", "test/aaaa/x.go"), ["aaa", "x"]);
        assert_eq!(caps("test/a?(a|b)/?(*).go", "test/aa/x.go"), ["a", "x"]);
        assert_eq!(
            caps("test*(/?(+(a|b)/*.go))", "test/a/x.go"),
            ["/a/x.go", "a/x.go", "a"]
        );
        assert_eq!(caps("test/a*(a|b)/x.go", "test/a/x.go"), [""]);
        // A group that takes no part is empty.
        assert_eq!(caps("/@(x|(a)|b)", "/b"), ["b", ""]);
        // Inside braces `)` is text, so this capture never closes and the
        // comma separates its alternatives (the platform's parser does so).
        assert_eq!(caps("/{(a),b}", "/b"), ["b"]);
        // Greedy: the first `*` takes as much as it can.
        assert_eq!(caps("/(*)-(*)", "/a-b-c"), ["a-b", "c"]);
        assert_eq!(
            caps("/*-(*)-lab*.txt", "/LIPID-patientID1-labID1.txt"),
            ["patientID1"]
        );
    }

    #[test]
    fn replace_templates() {
        let g = Glob::new("/foo(?)(?)").unwrap();
        assert_eq!(g.replace("/foo12", "$1$2").unwrap(), "12");
        assert_eq!(g.replace("/foo12", "$2$1").unwrap(), "21");
        assert_eq!(g.replace("/foo12", "${2}x$1").unwrap(), "2x1");
        assert_eq!(g.replace("/foo12", "$$1").unwrap(), "$1");
        assert_eq!(g.replace("/foo12", "$0").unwrap(), "/foo12");
        assert_eq!(g.replace("/foo12", "$3").unwrap(), "");
        assert_eq!(g.replace("/foo12", "$x").unwrap(), "$x");
        assert_eq!(g.replace("/foo12", "${1").unwrap(), "${1");
        assert_eq!(g.replace("/foo12", "$01").unwrap(), "");
        assert_eq!(
            g.replace("/bar", "$1-").unwrap(),
            "-",
            "no match: empty groups"
        );
        assert_eq!(references("$1${2}$$3$x$10"), [1, 2, 10]);
    }

    #[test]
    fn cleaning_like_the_platform() {
        assert_eq!(clean("/").as_deref(), Some("/"));
        assert_eq!(clean("*.csv").as_deref(), Some("/*.csv"));
        assert_eq!(clean("/(*)/").as_deref(), Some("/(*)"));
        assert_eq!(clean("//a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(clean("  "), None);
    }

    #[test]
    fn odd_shapes_parse_like_the_platform() {
        // Unclosed groups end with the pattern.
        assert!(m("/(a", "/a"));
        assert!(m("/{a,b", "/b"));
        // `)` and `|` outside a group are text.
        assert!(m("/a)|b", "/a)|b"));
        // A `|` inside braces inside a capture is text (braces win).
        assert!(m("/({a|b})", "/a|b"));
        // Escapes.
        assert!(m("/a\\*b", "/a*b"));
        assert!(!m("/a\\*b", "/axb"));
        assert!(m("/\\(x\\)", "/(x)"));
    }

    #[test]
    fn pathological_patterns_are_bounded() {
        let g = Glob::new("/*(*(*(a|b)))c").unwrap();
        let long = format!("/{}", "ab".repeat(40));
        match g.is_match(&long) {
            Ok(found) => assert!(!found),
            Err(e) => assert!(e.to_string().contains("too long"), "{e}"),
        }
    }
}
