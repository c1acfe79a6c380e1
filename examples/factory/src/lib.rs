//! `runicorn "factory:create_app(greeting=Bonjour, name=monde)"`: an app made
//! by a factory from string arguments, as Gunicorn's `main:create_app()`.

use runicorn_app::abi::FactoryArgs;
use runicorn_app::{export_factory, App, AppError, Call};

struct Greeter {
    text: String,
}

impl App for Greeter {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let length = self.text.len().to_string();
        call.start_response(
            200,
            &[
                ("Content-Type", b"text/plain"),
                ("Content-Length", length.as_bytes()),
            ],
        )?;
        call.write(self.text.as_bytes())?;
        Ok(())
    }
}

fn create(args: &FactoryArgs) -> Result<Greeter, String> {
    for (key, _) in &args.pairs {
        if key != "greeting" && key != "name" {
            return Err(format!(
                "unknown argument '{key}': create_app takes greeting and name"
            ));
        }
    }
    let greeting = args.get("greeting").unwrap_or("Hello");
    let name = args.get("name").unwrap_or("World");
    Ok(Greeter {
        text: format!("{greeting}, {name}!\n"),
    })
}

export_factory!(create_app, create);
