//! `mcpctl http`: the request each subcommand sends and how the face's state is printed.

use mcp_gateway_proto::{HttpInfo, Request};

use crate::cli::HttpCommand;

pub fn request(command: HttpCommand) -> Request {
    match command {
        HttpCommand::Enable {
            listen,
            force,
            profile,
        } => Request::HttpEnable {
            listen,
            force,
            profile,
        },
        HttpCommand::Disable => Request::HttpDisable,
        HttpCommand::Token { rotate } => Request::HttpToken { rotate },
        HttpCommand::Status => Request::HttpStatus,
    }
}

pub fn print(info: &HttpInfo) {
    match (&info.url, &info.listen) {
        (Some(url), _) => println!("http:     listening at {url}"),
        (None, Some(listen)) => println!(
            "http:     enabled on {listen} but not listening: {}",
            info.error.as_deref().unwrap_or("unknown reason")
        ),
        (None, None) => println!("http:     disabled"),
    }
    if info.enabled {
        println!(
            "profile:  {}",
            info.profile.as_deref().unwrap_or("the active one")
        );
        println!("sessions: {}", info.sessions);
    }
    println!("token:    {} (mcpctl http token)", info.token_file);
}
