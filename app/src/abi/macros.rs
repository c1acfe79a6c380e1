//! The macros that export an app or a factory from a Rust `cdylib`. They
//! expand to one `#[no_mangle] static` table whose entries are the generic
//! shims of `guest`, so the author only implements [`crate::App`].

/// Export an app under a symbol name: `export_app!(app, MyApp::new());`
/// makes `runicorn mylib:app` serve `MyApp`. The expression is evaluated
/// once, on first use in each process (after fork unless `--preload`).
#[macro_export]
macro_rules! export_app {
    ($symbol:ident, $make:expr) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static $symbol: $crate::abi::RcApp = {
            struct Source;
            impl $crate::abi::guest::AppSource for Source {
                fn app(_data: *const ::std::ffi::c_void) -> &'static dyn $crate::App {
                    static INSTANCE: ::std::sync::OnceLock<::std::boxed::Box<dyn $crate::App>> =
                        ::std::sync::OnceLock::new();
                    &**INSTANCE.get_or_init(|| ::std::boxed::Box::new($make))
                }
            }
            $crate::abi::guest::app_table::<Source>(::std::ptr::null())
        };
    };
}

/// Export an app factory: `export_factory!(create_app, make)` where
/// `make: fn(&FactoryArgs) -> Result<impl App, String>` makes
/// `runicorn "mylib:create_app(greeting=hi)"` work.
#[macro_export]
macro_rules! export_factory {
    ($symbol:ident, $make:expr) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static $symbol: $crate::abi::RcFactory = {
            struct Source;
            impl $crate::abi::guest::FactorySource for Source {
                fn create(
                    args: &$crate::abi::guest::FactoryArgs,
                ) -> ::std::result::Result<::std::boxed::Box<dyn $crate::App>, ::std::string::String> {
                    let make = $make;
                    make(args).map(|app| ::std::boxed::Box::new(app) as ::std::boxed::Box<dyn $crate::App>)
                }
            }
            $crate::abi::RcFactory {
                header: $crate::abi::RcObjectHeader::new::<$crate::abi::RcFactory>($crate::abi::RC_KIND_FACTORY),
                create: $crate::abi::guest::factory_create::<Source>,
            }
        };
    };
}

/// Export a server hook: `export_hook!(post_fork, my_post_fork)` where
/// `my_post_fork: fn(&HookEvent) -> Result<(), String>`, then
/// `post_fork = "mylib:post_fork"` in the config.
#[macro_export]
macro_rules! export_hook {
    ($symbol:ident, $body:expr) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static $symbol: $crate::hooks::RcHook = {
            /// # Safety
            /// The host calls it with a valid event and error buffer (the ABI's rule).
            unsafe extern "C" fn call(
                event: *const $crate::hooks::RcHookEvent,
                error: *mut $crate::abi::RcErrorBuf,
            ) -> i32 {
                let body: fn(
                    &$crate::hooks::HookEvent,
                ) -> ::std::result::Result<(), ::std::string::String> = $body;
                // SAFETY: forwarded from the host.
                unsafe { $crate::hooks::hook_shim(event, error, body) }
            }
            $crate::hooks::RcHook {
                header: $crate::abi::RcObjectHeader::new::<$crate::hooks::RcHook>(
                    $crate::abi::RC_KIND_HOOK,
                ),
                call,
            }
        };
    };
}
