//! Just enough SQL lexing for migrations: splitting a file into statements (a migration that
//! runs outside a transaction must send them one at a time) and reading identifiers and keywords
//! where the lint needs them. Quoted identifiers, string literals (with `''` and `E'\''`
//! escapes), dollar quotes and both comment forms are honoured, so a `;` inside any of them never
//! splits.

/// One lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A keyword or unquoted identifier, lower-cased as PostgreSQL folds it.
    Word(String),
    /// A `"quoted"` identifier, unescaped, case kept.
    Quoted(String),
    /// A string, number or dollar-quoted literal (its text is not needed).
    Literal,
    /// Any other single character: `(`, `)`, `,`, `.`, `;`, operators.
    Punct(char),
}

impl Token {
    /// Whether this is the keyword `kw` (lower case).
    pub fn is(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w == kw)
    }

    /// The identifier this token names, if it is one.
    pub fn ident(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// A statement: its text (without the closing `;`) and its tokens.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The statement's text, from its first token (comments before it left out).
    pub text: String,
    /// Its tokens, comments dropped.
    pub tokens: Vec<Token>,
    /// The line of the file it starts on, from 1.
    pub line: usize,
}

/// Splits `sql` into its statements, dropping empty ones and comments-only ones.
pub fn split(sql: &str) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut first = 0;
    let mut tokens = Vec::new();
    let mut lexer = Lexer::new(sql);
    while let Some((token, token_start, end)) = lexer.next_token() {
        if tokens.is_empty() {
            first = token_start;
        }
        if token == Token::Punct(';') {
            push(
                &mut statements,
                sql,
                start..end - 1,
                first,
                std::mem::take(&mut tokens),
            );
            start = end;
        } else {
            tokens.push(token);
        }
    }
    push(&mut statements, sql, start..sql.len(), first, tokens);
    statements
}

fn push(
    statements: &mut Vec<Statement>,
    sql: &str,
    range: std::ops::Range<usize>,
    first: usize,
    tokens: Vec<Token>,
) {
    if !tokens.is_empty() {
        statements.push(Statement {
            text: sql[first..range.end].trim_end().to_owned(),
            tokens,
            line: sql[..first].matches('\n').count() + 1,
        });
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Advances past everything up to and including the first `end`, or to the end of input.
    fn skip_past(&mut self, end: &str) {
        match self.rest().find(end) {
            Some(i) => self.pos += i + end.len(),
            None => self.pos = self.src.len(),
        }
    }

    /// The next token with the byte offsets of its start and of just after it.
    fn next_token(&mut self) -> Option<(Token, usize, usize)> {
        loop {
            let c = self.peek()?;
            let rest = self.rest();
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if rest.starts_with("--") {
                self.skip_past("\n");
            } else if rest.starts_with("/*") {
                self.skip_block_comment();
            } else {
                break;
            }
        }
        let c = self.peek()?;
        let start = self.pos;
        let token = match c {
            '\'' => {
                self.pos += 1;
                self.skip_string();
                Token::Literal
            }
            'e' | 'E' if self.rest()[1..].starts_with('\'') => {
                self.pos += 2;
                self.skip_escape_string();
                Token::Literal
            }
            '"' => {
                self.pos += 1;
                Token::Quoted(self.quoted_ident())
            }
            '$' if self.dollar_tag().is_some() => {
                let tag = self.dollar_tag().unwrap_or_default();
                self.pos += tag.len();
                self.skip_past(&tag);
                Token::Literal
            }
            c if c.is_ascii_digit() => {
                self.take_while(|c| c.is_ascii_alphanumeric() || c == '.');
                Token::Literal
            }
            c if c.is_alphabetic() || c == '_' => {
                let word = self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '$');
                Token::Word(word.to_lowercase())
            }
            c => {
                self.pos += c.len_utf8();
                Token::Punct(c)
            }
        };
        Some((token, start, self.pos))
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn skip_block_comment(&mut self) {
        // Block comments nest in PostgreSQL.
        let mut depth = 0usize;
        while !self.rest().is_empty() {
            let rest = self.rest();
            if rest.starts_with("/*") {
                depth += 1;
                self.pos += 2;
            } else if rest.starts_with("*/") {
                depth -= 1;
                self.pos += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.pos += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
    }

    fn skip_string(&mut self) {
        // `''` inside a standard string is an escaped quote, which two skips handle.
        loop {
            self.skip_past("'");
            if !self.rest().starts_with('\'') {
                return;
            }
            self.pos += 1;
        }
    }

    fn skip_escape_string(&mut self) {
        while let Some(c) = self.peek() {
            self.pos += c.len_utf8();
            match c {
                '\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += next.len_utf8();
                    }
                }
                '\'' if self.rest().starts_with('\'') => self.pos += 1,
                '\'' => return,
                _ => {}
            }
        }
    }

    fn quoted_ident(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += c.len_utf8();
            if c == '"' {
                if self.rest().starts_with('"') {
                    self.pos += 1;
                } else {
                    return out;
                }
            }
            out.push(c);
        }
        out
    }

    /// The `$tag$` opening a dollar quote at the current position, if there is one.
    fn dollar_tag(&self) -> Option<String> {
        let rest = self.rest();
        let body = &rest[1..];
        let end = body.find('$')?;
        let tag = &body[..end];
        let valid = tag
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_alphabetic() || (i > 0 && c.is_ascii_digit()));
        valid.then(|| format!("${tag}$"))
    }
}

/// Reads a possibly schema-qualified name starting at `tokens[i]`: returns the last part and the
/// index after it.
pub fn qualified_name(tokens: &[Token], mut i: usize) -> Option<(String, usize)> {
    let mut name = tokens.get(i)?.ident()?.to_owned();
    i += 1;
    while tokens.get(i) == Some(&Token::Punct('.')) {
        name = tokens.get(i + 1)?.ident()?.to_owned();
        i += 2;
    }
    Some((name, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "CREATE TABLE \"a;b\" (x text DEFAULT 'it''s; here');\n\
                   -- a comment; with a semicolon\n\
                   /* block; /* nested; */ still */ SELECT $f$ ; $f$, E'\\'; ';\n\
                   SELECT 1";
        let statements = split(sql);
        assert_eq!(statements.len(), 3, "{statements:#?}");
        assert_eq!(statements[0].tokens[2], Token::Quoted("a;b".into()));
        assert!(statements[1].text.ends_with("E'\\'; '"));
        assert_eq!(statements[2].text, "SELECT 1");
        assert_eq!(
            statements.iter().map(|s| s.line).collect::<Vec<_>>(),
            [1, 3, 4]
        );
    }

    #[test]
    fn comment_only_files_have_no_statements() {
        assert!(split("-- nothing\n/* here */\n;;").is_empty());
    }

    #[test]
    fn words_fold_to_lower_case_and_quoted_names_keep_theirs() {
        let s = &split("ALTER TABLE public.\"Lead\" ADD x")[0];
        assert!(s.tokens[0].is("alter"));
        assert_eq!(qualified_name(&s.tokens, 2), Some(("Lead".into(), 5)));
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_every_statement(text in "\\PC{0,200}") {
            let statements = split(&text);
            for s in &statements {
                prop_assert!(!s.tokens.is_empty());
            }
        }
    }
}
