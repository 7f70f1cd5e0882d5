//! The `#[worker]` attribute of `wws-sdk`.
//!
//! It turns a plain handler function into a WASI command: it emits a `main` that hands the
//! handler to `wws_sdk::__private::run`, which reads the request JSON from stdin, calls the
//! handler and writes one response JSON to stdout. All protocol logic lives in the SDK (where it
//! is unit tested); the expansion stays a one-liner.
//!
//! The SDK is found under whatever name the worker's `Cargo.toml` gives it, so
//! `wasm-workers-rs = { package = "wws-sdk", .. }` works for sources written for the original
//! kit.

use proc_macro::TokenStream;
use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::punctuated::Punctuated;
use syn::{Ident, ItemFn, Token, parse_macro_input};

/// Marks the request handler of a worker and generates its `main`.
///
/// Forms (the argument order is always request, params, cache, whatever the attribute order):
///
/// - `#[worker] fn handler(req: Request<String>) -> anyhow::Result<Response<Content>>`
/// - `#[worker(params)] fn handler(req, params: &HashMap<String, String>)`
/// - `#[worker(cache)] fn handler(req, cache: &mut Cache)`
/// - `#[worker(params, cache)] fn handler(req, params, cache)`
///
/// The request body type may be `String`, `Vec<u8>` or `bytes::Bytes` (binary bodies arrive
/// intact with the last two); the response body anything that converts into `Content`.
#[proc_macro_attribute]
pub fn worker(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_macro_input!(attr with Punctuated::<Ident, Token![,]>::parse_terminated);
    let handler = parse_macro_input!(item as ItemFn);
    match expand(&options, &handler) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Builds `main` for `handler` with the options given to the attribute.
fn expand(options: &Punctuated<Ident, Token![,]>, handler: &ItemFn) -> syn::Result<TokenStream2> {
    let mut params = false;
    let mut cache = false;
    for option in options {
        match option.to_string().as_str() {
            "params" => params = true,
            "cache" => cache = true,
            other => {
                return Err(syn::Error::new(
                    option.span(),
                    format!("unknown worker option `{other}`: expected `params` and/or `cache`"),
                ));
            }
        }
    }
    if handler.sig.asyncness.is_some() {
        return Err(syn::Error::new_spanned(
            handler.sig.fn_token,
            "a worker handler must be a plain (not async) function",
        ));
    }

    let sdk = sdk_path();
    let name = &handler.sig.ident;
    let params_arg = if params {
        quote!(__wws_params)
    } else {
        quote!(_)
    };
    let cache_arg = if cache {
        quote!(__wws_cache)
    } else {
        quote!(_)
    };
    let mut call_args = vec![quote!(__wws_request)];
    if params {
        call_args.push(quote!(__wws_params));
    }
    if cache {
        call_args.push(quote!(__wws_cache));
    }

    Ok(quote! {
        fn main() {
            #sdk::__private::run(#cache, |__wws_request, #params_arg, #cache_arg| {
                #name(#(#call_args),*)
            })
        }

        #handler
    })
}

/// Path of the SDK crate as the worker names it (`::wws_sdk`, or its alias in `Cargo.toml`).
fn sdk_path() -> TokenStream2 {
    match crate_name("wws-sdk") {
        Ok(FoundCrate::Name(name)) => {
            let ident = Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
        // `Itself` also covers the SDK's own examples and tests; the SDK declares
        // `extern crate self as wws_sdk` so the absolute path resolves in both.
        Ok(FoundCrate::Itself) | Err(_) => quote!(::wws_sdk),
    }
}
