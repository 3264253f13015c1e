//! Scripts: linkdrop's Lua scripts run here as they run in Redis (Lua 5.1, `KEYS`, `ARGV`,
//! `redis.call`), against the embedded keyspace, with Redis's conversions between Lua
//! values and replies. A script runs to its end before any other command: the engine holds
//! its lock for the whole script, as Redis runs one script at a time.

use std::collections::HashMap;

use mlua::{Function, Lua, MultiValue, Table, Value as LuaValue};
use redis::Value;

use crate::keyspace::{CmdError, Ctx, Keyspace, Reply};

/// The scripts loaded so far, by SHA-1 of their source (what `EVALSHA` names).
pub struct Scripts {
    lua: Lua,
    by_sha: HashMap<String, Function>,
}

impl Scripts {
    pub fn new() -> Self {
        let lua = Lua::new();
        let redis = lua.create_table().expect("a Lua table");
        lua.globals()
            .set("redis", redis)
            .expect("the redis table is set");
        Self {
            lua,
            by_sha: HashMap::new(),
        }
    }

    /// Compiles `source`; its SHA-1 (hex), as `SCRIPT LOAD` answers.
    pub fn load(&mut self, source: &[u8]) -> Result<String, CmdError> {
        let sha = sha1_smol::Sha1::from(source).digest().to_string();
        if !self.by_sha.contains_key(&sha) {
            let function = self
                .lua
                .load(source)
                .set_name(format!("@script_{sha}"))
                .into_function()
                .map_err(|e| CmdError::new("ERR", format!("Error compiling script: {e}")))?;
            self.by_sha.insert(sha.clone(), function);
        }
        Ok(sha)
    }

    /// Runs the script `sha` with `KEYS` and `ARGV` against `keyspace`.
    pub fn run(
        &self,
        sha: &str,
        keys: &[Vec<u8>],
        argv: &[Vec<u8>],
        keyspace: &mut Keyspace,
        ctx: &mut Ctx,
    ) -> Reply {
        let function = self
            .by_sha
            .get(&sha.to_ascii_lowercase())
            .ok_or_else(|| CmdError::new("NOSCRIPT", "No matching script. Please use EVAL."))?;
        let lua = &self.lua;
        let script_error =
            |e: mlua::Error| CmdError::new("ERR", format!("Error running script: {e}"));
        let globals = lua.globals();
        globals
            .set("KEYS", strings(lua, keys).map_err(script_error)?)
            .map_err(script_error)?;
        globals
            .set("ARGV", strings(lua, argv).map_err(script_error)?)
            .map_err(script_error)?;
        let redis: Table = globals.get("redis").map_err(script_error)?;
        lua.scope(|scope| {
            let call = scope.create_function_mut(|lua, args: MultiValue| {
                let args = command_args(args)?;
                match keyspace.execute(ctx, &args) {
                    Ok(reply) => to_lua(lua, reply),
                    Err(e) => Err(mlua::Error::RuntimeError(format!(
                        "{} {}",
                        e.code, e.message
                    ))),
                }
            })?;
            redis.set("call", call)?;
            let returned: LuaValue = function.call(())?;
            Ok(from_lua(returned))
        })
        .map_err(script_error)?
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

fn strings(lua: &Lua, items: &[Vec<u8>]) -> mlua::Result<Table> {
    lua.create_sequence_from(
        items
            .iter()
            .map(|item| lua.create_string(item))
            .collect::<mlua::Result<Vec<_>>>()?,
    )
}

/// `redis.call`'s arguments as a command: strings as they are, numbers as Redis prints
/// them.
fn command_args(args: MultiValue) -> mlua::Result<Vec<Vec<u8>>> {
    args.into_iter()
        .map(|arg| match arg {
            LuaValue::String(s) => Ok(s.as_bytes().to_vec()),
            LuaValue::Integer(i) => Ok(i.to_string().into_bytes()),
            LuaValue::Number(n) if n.fract() == 0.0 && n.abs() < 1e17 => {
                Ok((n as i64).to_string().into_bytes())
            }
            LuaValue::Number(n) => Ok(n.to_string().into_bytes()),
            _ => Err(mlua::Error::RuntimeError(
                "Lua redis lib command arguments must be strings or integers".into(),
            )),
        })
        .collect()
}

/// A reply as a script sees it: integers as numbers, nil as `false`, status as `{ok=..}`.
fn to_lua(lua: &Lua, reply: Value) -> mlua::Result<LuaValue> {
    Ok(match reply {
        Value::Nil => LuaValue::Boolean(false),
        Value::Int(i) => LuaValue::Number(i as f64),
        Value::BulkString(b) => LuaValue::String(lua.create_string(&b)?),
        Value::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.into_iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(table)
        }
        Value::Okay => status(lua, "OK")?,
        Value::SimpleString(s) => status(lua, &s)?,
        other => {
            return Err(mlua::Error::RuntimeError(format!(
                "reply {other:?} has no Lua form"
            )));
        }
    })
}

fn status(lua: &Lua, text: &str) -> mlua::Result<LuaValue> {
    let table = lua.create_table()?;
    table.set("ok", text)?;
    Ok(LuaValue::Table(table))
}

/// What a script returned, as Redis replies it: numbers truncated to integers, `false` as
/// nil, a table as an array up to its first nil, `{err=..}` as an error.
fn from_lua(value: LuaValue) -> Reply {
    Ok(match value {
        LuaValue::Nil | LuaValue::Boolean(false) => Value::Nil,
        LuaValue::Boolean(true) => Value::Int(1),
        LuaValue::Integer(i) => Value::Int(i),
        LuaValue::Number(n) => Value::Int(n as i64),
        LuaValue::String(s) => Value::BulkString(s.as_bytes().to_vec()),
        LuaValue::Table(table) => {
            if let Ok(LuaValue::String(err)) = table.raw_get::<LuaValue>("err") {
                return Err(CmdError::new("ERR", err.to_string_lossy()));
            }
            if let Ok(LuaValue::String(ok)) = table.raw_get::<LuaValue>("ok") {
                return Ok(Value::SimpleString(ok.to_string_lossy()));
            }
            let mut items = Vec::new();
            for i in 1.. {
                match table.raw_get::<LuaValue>(i) {
                    Ok(LuaValue::Nil) | Err(_) => break,
                    Ok(item) => items.push(from_lua(item)?),
                }
            }
            Value::Array(items)
        }
        _ => Value::Nil,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(source: &str, keys: &[&str], argv: &[&str], ks: &mut Keyspace) -> (Reply, Ctx) {
        let mut scripts = Scripts::new();
        let sha = scripts.load(source.as_bytes()).unwrap();
        let mut ctx = Ctx {
            now_ms: 1_700_000_000_123,
            ..Ctx::default()
        };
        let bytes = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        let reply = scripts.run(&sha, &bytes(keys), &bytes(argv), ks, &mut ctx);
        (reply, ctx)
    }

    #[test]
    fn a_script_reads_and_writes_through_redis_call_with_redis_conversions() {
        let mut ks = Keyspace::default();
        let source = "redis.call('HSET', KEYS[1], 'n', ARGV[1])
            local n = redis.call('HINCRBY', KEYS[1], 'n', 2)
            local missing = redis.call('HGET', KEYS[1], 'nope')
            local t = redis.call('TIME')
            return { n, tostring(missing), t[1], 'x', nil, 'after nil' }";
        let (reply, ctx) = eval(source, &["h"], &["40"], &mut ks);
        assert_eq!(
            reply,
            Ok(Value::Array(vec![
                Value::Int(42),
                Value::BulkString(b"false".to_vec()),
                Value::BulkString(b"1700000000".to_vec()),
                Value::BulkString(b"x".to_vec()),
            ]))
        );
        assert_eq!(ctx.effects.len(), 2, "both writes journaled");
    }

    #[test]
    fn a_failing_call_fails_the_script_and_an_unknown_sha_is_noscript() {
        let mut ks = Keyspace::default();
        let (reply, _) = eval(
            "redis.call('SET', 'k', 'v'); return redis.call('HGET', 'k', 'f')",
            &[],
            &[],
            &mut ks,
        );
        assert!(reply.unwrap_err().message.contains("WRONGTYPE"));
        let scripts = Scripts::new();
        let mut ctx = Ctx::default();
        assert_eq!(
            scripts
                .run("abc", &[], &[], &mut ks, &mut ctx)
                .unwrap_err()
                .code,
            "NOSCRIPT"
        );
    }
}
