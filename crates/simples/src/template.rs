//! Templates: the [`TemplateEngine`] trait and the default [`MiniJinja`]
//! engine (Jinja2 syntax, templates loaded from a folder).
//!
//! An engine renders a named template with JSON data; it is used by
//! `Conn::render` for HTTP responses and can be called directly (e.g. to
//! build WebSocket messages).

use std::path::Path;

use crate::error::Result;

/// Renders named templates with serde data.
pub trait TemplateEngine: Send + Sync + 'static {
    /// Renders template `name` with `data`.
    fn render(&self, name: &str, data: &serde_json::Value) -> Result<String>;

    /// Renders template `name` with any serializable `data`.
    fn render_with<T: serde::Serialize + ?Sized>(&self, name: &str, data: &T) -> Result<String>
    where
        Self: Sized,
    {
        let value = serde_json::to_value(data)?;
        self.render(name, &value)
    }
}

/// The default engine: minijinja. HTML auto-escaping is on for `.html`,
/// `.htm` and `.xml` templates.
pub struct MiniJinja {
    env: minijinja::Environment<'static>,
}

impl MiniJinja {
    /// An engine loading templates from `dir` on first use (the file name
    /// relative to `dir` is the template name, e.g. `"pages/home.html"`).
    pub fn from_dir(dir: impl AsRef<Path>) -> MiniJinja {
        let mut env = minijinja::Environment::new();
        env.set_loader(minijinja::path_loader(dir));
        MiniJinja { env }
    }

    /// An engine with no templates (add them with
    /// [`add_template`](Self::add_template)).
    pub fn new() -> MiniJinja {
        MiniJinja { env: minijinja::Environment::new() }
    }

    /// An engine over a configured minijinja environment.
    pub fn from_environment(env: minijinja::Environment<'static>) -> MiniJinja {
        MiniJinja { env }
    }

    /// Adds template `name` from `source` (`500`-kind error on a syntax
    /// error).
    pub fn add_template(&mut self, name: impl Into<String>, source: impl Into<String>) -> Result<()> {
        self.env.add_template_owned(name.into(), source.into())?;
        Ok(())
    }

    /// The minijinja environment, to add filters, functions or globals.
    pub fn environment_mut(&mut self) -> &mut minijinja::Environment<'static> {
        &mut self.env
    }
}

impl Default for MiniJinja {
    fn default() -> Self {
        MiniJinja::new()
    }
}

impl TemplateEngine for MiniJinja {
    fn render(&self, name: &str, data: &serde_json::Value) -> Result<String> {
        Ok(self.env.get_template(name)?.render(data)?)
    }
}
