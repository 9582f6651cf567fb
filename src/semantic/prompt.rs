//! The texts the language model embeds: one per item from a prompt template in the spirit of the
//! reference's ("The beauty item has following attributes: name is …"), one per user from the
//! titles of the training history.

use crate::data::ItemMeta;

/// The item prompt: `The {noun} has the following attributes: name is …; year is …; genres are ….`
/// Missing fields read `unknown`, as in the reference notebooks.
pub fn item_text(noun: &str, key: &str, meta: Option<&ItemMeta>) -> String {
    let unknown = || "unknown".to_string();
    let title = meta
        .map(|m| m.title.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| key.to_string());
    let year = meta
        .and_then(|m| m.year.clone())
        .filter(|y| !y.trim().is_empty())
        .unwrap_or_else(unknown);
    let genres = meta
        .map(|m| m.genres.join(", "))
        .filter(|g| !g.is_empty())
        .unwrap_or_else(unknown);
    format!("The {noun} has the following attributes: name is {title}; year is {year}; genres are {genres}.")
}

/// The user prompt around a history of titles (oldest first).
pub fn user_text(noun_plural: &str, titles: &[&str]) -> String {
    format!(
        "The user has watched the following {noun_plural}: {}. Please conclude the user's preference.",
        titles.join(", ")
    )
}

/// The user prompt with as many of the **newest** titles as fit in `max_tokens` (the reference
/// keeps the last 8000 characters; the encoder here would otherwise keep the oldest tokens).
/// `count` returns the number of tokens of a text.
pub fn user_text_fitting(
    noun_plural: &str,
    titles: &[&str],
    max_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> String {
    let text = |n: usize| user_text(noun_plural, &titles[titles.len() - n..]);
    if count(&text(titles.len())) <= max_tokens {
        return text(titles.len());
    }
    // Largest n whose text fits; token count grows with n.
    let (mut lo, mut hi) = (0usize, titles.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if count(&text(mid)) <= max_tokens {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    text(lo.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_prompt_fills_unknowns() {
        let m = ItemMeta {
            title: "Toy Story".into(),
            year: Some("1995".into()),
            genres: vec!["Animation".into(), "Comedy".into()],
        };
        assert_eq!(
            item_text("movie", "1", Some(&m)),
            "The movie has the following attributes: name is Toy Story; year is 1995; genres are Animation, Comedy."
        );
        assert!(item_text("movie", "k9", None)
            .contains("name is k9; year is unknown; genres are unknown"));
    }

    #[test]
    fn user_prompt_keeps_the_newest_titles_that_fit() {
        let titles = ["A", "B", "C", "D"];
        let words = |s: &str| s.split_whitespace().count();
        let full = user_text("movies", &titles);
        assert_eq!(user_text_fitting("movies", &titles, 100, &words), full);
        let limit = words(&user_text("movies", &titles[2..]));
        let t = user_text_fitting("movies", &titles, limit, &words);
        assert!(t.contains("C, D") && !t.contains("B,"), "{t}");
    }
}
