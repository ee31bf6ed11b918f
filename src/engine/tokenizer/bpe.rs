//! Byte-level BPE (SmolLM2, Qwen2.5): the vocabulary, merge ranks and the pre-tokenizer that
//! cuts text into words, as llama.cpp's `llm_tokenizer_bpe` runs them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

use super::super::gguf::{Gguf, Value};
use super::super::ModelError;
use super::{
    ends_generation, keeps_normal_end_s, sort_user_defined, split_user_defined, texts_and_types,
    Fragment, BYTE, NORMAL, USER_DEFINED,
};

/// How text is cut into words before the merges run: llama.cpp's pre-tokenizer types
/// (`tokenizer.ggml.pre`) that nzip implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// Every number character a word of its own, then GPT-2's pattern (SmolLM2, StarCoder).
    Gpt2DigitsApart,
    /// Qwen2's pattern: case-insensitive contractions, one optional non-letter before
    /// letters, single digits, punctuation runs with trailing newlines, newline runs.
    Qwen2,
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp chooses for `name` (llama-vocab.cpp's table).
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "default" | "gpt2" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" => {
                Self::Gpt2
            }
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => Self::Gpt2DigitsApart,
            "qwen2" | "stablelm2" | "hunyuan" => Self::Qwen2,
            _ => return None,
        })
    }
}

/// A byte-level BPE tokenizer and the bytes of every token.
pub struct ByteLevelBpe {
    /// What each token stands for in plain text: a normal token's text decoded from the
    /// byte-level alphabet, a user-defined token's text as is, nothing for control, unknown
    /// and unused tokens (as llama.cpp renders them without special tokens).
    pieces: Vec<Box<[u8]>>,
    /// The token of each byte alone (its one-character text in the byte-level alphabet).
    byte_token: [Option<u32>; 256],
    /// (left, right) → (rank, merged token): the merges whose three texts are all tokens.
    merges: HashMap<(u32, u32), (u32, u32)>,
    pre: PreTokenizer,
    /// Tokens matched in raw text before anything else (llama.cpp's user-defined tokens,
    /// which it splits out even when special tokens are not parsed), longest first.
    user_defined: Vec<(Box<str>, u32)>,
}

impl ByteLevelBpe {
    /// Reads the tokenizer of a GGUF file (its model must be "gpt2").
    pub fn from_gguf(g: &Gguf) -> Result<Self, ModelError> {
        let pre_name = g
            .string("tokenizer.ggml.pre")
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|_| "default".into());
        let pre = PreTokenizer::named(&pre_name)
            .ok_or_else(|| ModelError::Unsupported(format!("pre-tokenizer {pre_name:?}")))?;
        let (texts, types, n_vocab) = texts_and_types(g)?;

        let alphabet = ByteAlphabet::new();
        let mut by_text: HashMap<&[u8], u32> = HashMap::with_capacity(texts.len());
        let mut pieces = Vec::with_capacity(texts.len());
        let mut user_defined: Vec<(Box<str>, u32)> = Vec::new();
        let normal_end_s = keeps_normal_end_s(texts);
        for (id, (text, &kind)) in (0..n_vocab).zip(texts.iter().zip(&types)) {
            // llama.cpp's token_to_id keeps the last of equal texts.
            by_text.insert(text, id);
            let end_of_generation = ends_generation(text, normal_end_s);
            pieces.push(match kind {
                _ if end_of_generation => Box::default(),
                NORMAL => alphabet.decode(text).into_boxed_slice(),
                USER_DEFINED => {
                    if let Ok(s) = std::str::from_utf8(text) {
                        if !s.is_empty() {
                            user_defined.push((s.into(), id));
                        }
                    }
                    text.clone().into_boxed_slice()
                }
                BYTE => {
                    return Err(ModelError::Unsupported(
                        "byte tokens in a byte-level BPE vocabulary".into(),
                    ))
                }
                _ => Box::default(),
            });
        }
        sort_user_defined(&mut user_defined);

        let mut byte_token = [None; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            *slot = by_text.get(alphabet.encode(b as u8).as_bytes()).copied();
        }

        let merge_list = match g.metadata.get("tokenizer.ggml.merges") {
            Some(Value::Strings(m)) => &m[..],
            Some(_) => {
                return Err(ModelError::BadMetadata(
                    "tokenizer.ggml.merges is not a list of strings".into(),
                ))
            }
            None => &[],
        };
        let mut merges = HashMap::with_capacity(merge_list.len());
        let mut joined = Vec::new();
        for (rank, merge) in (0u32..).zip(merge_list) {
            // "left right", cut at the first space after the first byte (llama.cpp's rule).
            let Some(cut) = merge.iter().skip(1).position(|&b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (left, right) = (&merge[..cut], &merge[cut + 1..]);
            joined.clear();
            joined.extend_from_slice(left);
            joined.extend_from_slice(right);
            // A merge whose result is not a token could never finish as one: llama.cpp would
            // carry it as text and spell it in bytes at the end. No supported model has one.
            if let (Some(&l), Some(&r), Some(&m)) = (
                by_text.get(left),
                by_text.get(right),
                by_text.get(&joined[..]),
            ) {
                merges.entry((l, r)).or_insert((rank, m));
            }
        }
        Ok(Self {
            pieces,
            byte_token,
            merges,
            pre,
            user_defined,
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.pieces.len()
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// The bytes `token` stands for (empty for control tokens and outside the vocabulary).
    pub fn piece(&self, token: u32) -> &[u8] {
        self.pieces.get(token as usize).map_or(&[], |p| &p[..])
    }

    /// Tokens of `text` as plain text: user-defined tokens split out first, then each word
    /// of the pre-tokenizer merged by rank.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        let mut state = MergeState::default();
        let mut words = Vec::new();
        for fragment in split_user_defined(text, &self.user_defined) {
            match fragment {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(t) => {
                    words.clear();
                    pre_tokenize(self.pre, t, &mut words);
                    let mut at = 0;
                    for &len in &words {
                        self.merge_word(&t.as_bytes()[at..at + len], &mut state, &mut out);
                        at += len;
                    }
                }
            }
        }
        out
    }

    /// Runs the merges over one word, lowest rank first and leftmost among equals (the order
    /// llama.cpp's queue pops), and appends the word's tokens.
    fn merge_word(&self, word: &[u8], s: &mut MergeState, out: &mut Vec<u32>) {
        let n = word.len();
        s.clear();
        s.token
            .extend(word.iter().map(|&b| self.byte_token[b as usize]));
        s.prev.extend((0..n).map(|i| i.checked_sub(1)));
        s.next.extend((1..=n).map(|i| (i < n).then_some(i)));
        s.alive.resize(n, true);
        for i in 1..n {
            self.queue_pair(s, i - 1, i);
        }
        while let Some(Reverse(pair)) = s.queue.pop() {
            let QueuedPair {
                left,
                right,
                tokens: (l, r),
                merged,
                ..
            } = pair;
            // Stale: one side was merged into something else since this pair was queued.
            if !s.alive[left]
                || !s.alive[right]
                || s.token[left] != Some(l)
                || s.token[right] != Some(r)
            {
                continue;
            }
            s.token[left] = Some(merged);
            s.alive[right] = false;
            s.next[left] = s.next[right];
            if let Some(after) = s.next[right] {
                s.prev[after] = Some(left);
            }
            if let Some(before) = s.prev[left] {
                self.queue_pair(s, before, left);
            }
            if let Some(after) = s.next[left] {
                self.queue_pair(s, left, after);
            }
        }
        let mut at = (n > 0).then_some(0);
        while let Some(i) = at {
            // A byte without a token of its own is dropped, as llama.cpp drops it; the
            // segmenter's check then codes that run as raw bytes.
            out.extend(s.token[i]);
            at = s.next[i];
        }
    }

    fn queue_pair(&self, s: &mut MergeState, left: usize, right: usize) {
        let (Some(l), Some(r)) = (s.token[left], s.token[right]) else {
            return;
        };
        if let Some(&(rank, merged)) = self.merges.get(&(l, r)) {
            s.queue.push(Reverse(QueuedPair {
                rank,
                left,
                right,
                tokens: (l, r),
                merged,
            }));
        }
    }
}

/// One word's symbols while merging, kept between words to reuse the allocations.
#[derive(Default)]
struct MergeState {
    token: Vec<Option<u32>>,
    prev: Vec<Option<usize>>,
    next: Vec<Option<usize>>,
    alive: Vec<bool>,
    queue: BinaryHeap<Reverse<QueuedPair>>,
}

/// Two neighbouring symbols that a merge joins. Ordered by rank, then by position, so the
/// queue pops the lowest rank and the leftmost among equals.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct QueuedPair {
    rank: u32,
    left: usize,
    right: usize,
    /// The two tokens when queued: a pair whose sides changed since is stale.
    tokens: (u32, u32),
    merged: u32,
}

impl MergeState {
    fn clear(&mut self) {
        self.token.clear();
        self.prev.clear();
        self.next.clear();
        self.alive.clear();
        self.queue.clear();
    }
}

/// GPT-2's map between bytes and the printable characters byte-level token texts are spelled
/// in: printable Latin-1 stands for itself, every other byte for a character from U+0100 on.
struct ByteAlphabet {
    char_of: [char; 256],
    byte_of: HashMap<char, u8>,
}

impl ByteAlphabet {
    fn new() -> Self {
        let mut char_of = ['\0'; 256];
        let mut next = 256u32;
        for b in 0..=255u8 {
            char_of[b as usize] = if matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff) {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).expect("below U+0200")
            };
        }
        let byte_of = (0..=255u8).map(|b| (char_of[b as usize], b)).collect();
        Self { char_of, byte_of }
    }

    fn encode(&self, b: u8) -> String {
        self.char_of[b as usize].to_string()
    }

    /// A token's text back to bytes. A character outside the alphabet is spelled as
    /// llama.cpp's `llama_decode_text` spells it, so that both render the same piece.
    fn decode(&self, text: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(text);
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.byte_of.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    out.extend_from_slice(b"[UNK_BYTE_0x");
                    let mut utf8 = [0; 4];
                    for b in c.encode_utf8(&mut utf8).bytes() {
                        out.extend_from_slice(format!("{b:02x}").as_bytes());
                    }
                    out.extend_from_slice(text.as_bytes());
                    out.push(b']');
                }
            }
        }
        out
    }
}

/// What the pre-tokenizers ask of a character: llama.cpp's flags \p{L}, \p{N} and \s.
/// Past the end of the text every flag is false, `defined` included.
#[derive(Clone, Copy, Default)]
struct Class {
    defined: bool,
    letter: bool,
    number: bool,
    space: bool,
}

impl Class {
    fn of(c: char) -> Self {
        let group = c.general_category_group();
        Self {
            defined: true,
            letter: group == GeneralCategoryGroup::Letter,
            number: group == GeneralCategoryGroup::Number,
            // Rust's White_Space set is llama.cpp's whitespace table, character for character.
            space: c.is_whitespace(),
        }
    }

    /// `[^\s\p{L}\p{N}]`, for a character inside the text.
    fn other(self) -> bool {
        self.defined && !(self.space || self.letter || self.number)
    }
}

/// Appends the byte lengths of `text`'s words.
fn pre_tokenize(pre: PreTokenizer, text: &str, words: &mut Vec<usize>) {
    let chars: Vec<char> = text.chars().collect();
    let mut char_words = Vec::new();
    match pre {
        PreTokenizer::Gpt2 => split_gpt2(&chars, &mut char_words),
        PreTokenizer::Qwen2 => split_qwen2(&chars, &mut char_words),
        PreTokenizer::Gpt2DigitsApart => {
            // First pass `\p{N}`: each number character alone, the runs between as they are.
            let mut start = 0;
            for (i, &c) in chars.iter().enumerate() {
                if Class::of(c).number {
                    if start < i {
                        split_gpt2(&chars[start..i], &mut char_words);
                    }
                    char_words.push(1);
                    start = i + 1;
                }
            }
            if start < chars.len() {
                split_gpt2(&chars[start..], &mut char_words);
            }
        }
    }
    let mut at = 0;
    for len in char_words {
        words.push(chars[at..at + len].iter().map(|c| c.len_utf8()).sum());
        at += len;
    }
}

/// Character access for a splitter: past the end, no character and no flags.
struct Cursor<'c>(&'c [char]);

impl Cursor<'_> {
    fn at(&self, i: usize) -> Option<char> {
        self.0.get(i).copied()
    }

    fn class(&self, i: usize) -> Class {
        self.at(i).map(Class::of).unwrap_or_default()
    }

    /// A contraction (`'s`, `'t`, `'m`, `'d`, `'re`, `'ve`, `'ll`) at `i`: its length.
    fn contraction(&self, i: usize, fold_case: bool) -> Option<usize> {
        if self.at(i)? != '\'' {
            return None;
        }
        let lower = |c: Option<char>| c.map(|c| if fold_case { c.to_ascii_lowercase() } else { c });
        let (a, b) = (lower(self.at(i + 1)), lower(self.at(i + 2)));
        match (a?, b) {
            ('s' | 't' | 'm' | 'd', _) => Some(2),
            ('r', Some('e')) | ('v', Some('e')) | ('l', Some('l')) => Some(3),
            _ => None,
        }
    }

    /// Whitespace characters from `i` on.
    fn spaces_from(&self, i: usize) -> usize {
        (i..).take_while(|&j| self.class(j).space).count()
    }

    /// Where `\s+(?!\S)|\s+` from `i` ends (one character on when `i` is no space): before
    /// a non-space, the last space is left to the word after it.
    fn spaces_end(&self, i: usize) -> usize {
        let spaces = self.spaces_from(i);
        if spaces > 1 && i + spaces < self.0.len() {
            i + spaces - 1
        } else {
            i + spaces.max(1)
        }
    }
}

/// GPT-2's pattern over one run of characters (llama.cpp's unicode_regex_split_custom_gpt2).
fn split_gpt2(chars: &[char], words: &mut Vec<usize>) {
    let text = Cursor(chars);
    let n = chars.len();
    let (mut pos, mut start) = (0, 0);
    while pos < n {
        let c = chars[pos];
        if let Some(len) = text.contraction(pos, false) {
            pos += len;
        } else {
            // ` ?X+`: an optional space, then a run of one class.
            let lead = usize::from(c == ' ');
            let first = text.class(pos + lead);
            let run = |test: fn(Class) -> bool, pos: &mut usize| {
                *pos += lead;
                while test(text.class(*pos)) {
                    *pos += 1;
                }
            };
            if first.letter {
                run(|k| k.letter, &mut pos);
            } else if first.number {
                run(|k| k.number, &mut pos);
            } else if first.other() {
                run(Class::other, &mut pos);
            } else {
                pos = text.spaces_end(pos);
            }
        }
        words.push(pos - start);
        start = pos;
    }
}

/// Qwen2's pattern over one run of characters (llama.cpp's
/// unicode_regex_split_custom_qwen2).
fn split_qwen2(chars: &[char], words: &mut Vec<usize>) {
    let text = Cursor(chars);
    let n = chars.len();
    let (mut pos, mut start) = (0, 0);
    let newline = |c: Option<char>| matches!(c, Some('\r' | '\n'));
    while pos < n {
        let c = chars[pos];
        let here = text.class(pos);
        let after_space = if c == ' ' { text.class(pos + 1) } else { here };
        if let Some(len) = text.contraction(pos, true) {
            pos += len;
        } else if !(newline(Some(c)) || here.number) && (here.letter || text.class(pos + 1).letter)
        {
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            pos += 1;
            while text.class(pos).letter {
                pos += 1;
            }
        } else if here.number {
            pos += 1;
        } else if !(after_space.space || after_space.letter || after_space.number) {
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (a lone trailing space also lands here).
            pos += usize::from(c == ' ');
            while text.class(pos).other() {
                pos += 1;
            }
            while newline(text.at(pos)) {
                pos += 1;
            }
        } else {
            let spaces = text.spaces_from(pos);
            let last_newline = (pos..pos + spaces).rev().find(|&i| newline(text.at(i)));
            pos = match last_newline {
                // `\s*[\r\n]+`
                Some(i) => i + 1,
                None => text.spaces_end(pos),
            };
        }
        words.push(pos - start);
        start = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, text: &str) -> Vec<&str> {
        let mut lens = Vec::new();
        pre_tokenize(pre, text, &mut lens);
        let mut at = 0;
        lens.iter()
            .map(|&l| {
                at += l;
                &text[at - l..at]
            })
            .collect()
    }

    #[test]
    fn gpt2_words_follow_the_pattern() {
        let w = words(PreTokenizer::Gpt2, "I'll see you're 42   times,\n\n  ok?! ");
        assert_eq!(
            w,
            [
                "I", "'ll", " see", " you", "'re", " 42", "  ", " times", ",", "\n\n ", " ok",
                "?!", " "
            ]
        );
        // Non-Latin letters and numbers are letters and numbers too.
        assert_eq!(
            words(PreTokenizer::Gpt2, "naïve 東京 ٣٤"),
            ["naïve", " 東京", " ٣٤"]
        );
    }

    #[test]
    fn digits_apart_cuts_every_number_character() {
        assert_eq!(
            words(PreTokenizer::Gpt2DigitsApart, "in 2024, x12y"),
            ["in", " ", "2", "0", "2", "4", ",", " x", "1", "2", "y"]
        );
    }

    #[test]
    fn qwen2_words_follow_the_pattern() {
        assert_eq!(
            words(PreTokenizer::Qwen2, "It'S 2024:\r\n  fn(x)\n\n\tend  "),
            [
                "It", "'S", " ", "2", "0", "2", "4", ":\r\n", " ", " fn", "(x", ")\n\n", "\tend",
                "  "
            ]
        );
    }

    /// A GGUF-shaped vocabulary: the 256 byte tokens, some merges, a control and a
    /// user-defined token.
    fn toy() -> ByteLevelBpe {
        let alphabet = ByteAlphabet::new();
        let mut texts: Vec<Vec<u8>> = (0..=255u8)
            .map(|b| alphabet.encode(b).into_bytes())
            .collect();
        let mut types = vec![NORMAL; 256];
        let space = alphabet.encode(b' ');
        let merges: Vec<String> = vec![
            "h e".into(),
            "l l".into(),
            "he ll".into(),
            format!("{space} w"),
            "hell o".into(),
        ];
        for m in &merges {
            texts.push(m.replace(' ', "").into_bytes());
            types.push(NORMAL);
        }
        texts.push(b"<|end|>".to_vec());
        types.push(3);
        texts.push(b"<tool>".to_vec());
        types.push(USER_DEFINED);
        let mut metadata = HashMap::new();
        metadata.insert(
            "tokenizer.ggml.model".into(),
            Value::String(b"gpt2".to_vec()),
        );
        metadata.insert("tokenizer.ggml.pre".into(), Value::String(b"gpt2".to_vec()));
        metadata.insert("tokenizer.ggml.tokens".into(), Value::Strings(texts));
        metadata.insert("tokenizer.ggml.token_type".into(), Value::Ints(types));
        metadata.insert(
            "tokenizer.ggml.merges".into(),
            Value::Strings(merges.into_iter().map(String::into_bytes).collect()),
        );
        ByteLevelBpe::from_gguf(&Gguf::from_metadata(metadata)).expect("toy vocabulary")
    }

    #[test]
    fn merges_run_by_rank_and_pieces_give_the_bytes_back() {
        let bpe = toy();
        let tokens = bpe.tokenize("hello<tool> wo\u{e9}");
        let hello = 260; // "hell o" is the fifth merge
        let space_w = 259;
        let tool = 262;
        assert_eq!(&tokens[..3], [hello, tool, space_w]);
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| bpe.piece(t).to_vec()).collect();
        assert_eq!(bytes, "hello<tool> wo\u{e9}".as_bytes());
        assert_eq!(bpe.piece(261), b"", "a control token renders as nothing");
        assert_eq!(
            bpe.piece(b'\n' as u32),
            b"\n",
            "bytes outside Latin-1's printables"
        );
    }
}
