//! Loading: directives from files (with `Include`), rule construction,
//! `SecDefaultAction` merging, load-time exclusions and updates, and the
//! final per-phase rule lists.

use crate::actions::{Actions, Ctl, Disruptive, NonDisruptive, SetVarOp, TStep};
use crate::macros::MacroStr;
use crate::parser::lexer::{self, Directive, Word};
use crate::parser::{generic, parse_operator};
use crate::prefilter::Prefilter;
use crate::rules::{Config, Entry, LimitAction, Op, Rule, RuleMeta};
use crate::variables::{self, Target, Var};
use crate::{actions, ops, EngineMode, FileSource, LoadError, LoadOptions};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Directives accepted and ignored: audit/debug logging, storage, and
/// Apache/ModSecurity tuning that has no meaning in Palisade.
const IGNORED: &[&str] = &[
    "secauditengine",
    "secauditlog",
    "secauditlog2",
    "secauditlogparts",
    "secauditlogrelevantstatus",
    "secauditlogstoragedir",
    "secauditlogtype",
    "secauditlogformat",
    "secauditlogdirmode",
    "secauditlogfilemode",
    "secdebuglog",
    "secdebugloglevel",
    "sectmpdir",
    "secdatadir",
    "secuploaddir",
    "secuploadkeepfiles",
    "secuploadfilemode",
    "secuploadfilelimit",
    "sectmpsaveuploadedfiles",
    "secpcrematchlimit",
    "secpcrematchlimitrecursion",
    "secunicodemapfile",
    "secunicodecodepage",
    "secstatusengine",
    "seccookieformat",
    "seccookiev0separator",
    "secserversignature",
    "seccomponentsignature",
    "seccollectiontimeout",
    "secwebappid",
    "secsensorid",
    "sechashengine",
    "sechashkey",
    "sechashparam",
    "sechashmethodrx",
    "sechashmethodpm",
    "secgeolookupdb",
    "secgsblookupdb",
    "secconnengine",
    "secconnreadstatelimit",
    "secconnwritestatelimit",
    "secreadstatelimit",
    "secwritestatelimit",
    "seccontentinjection",
    "secstreaminbodyinspection",
    "secstreamoutbodyinspection",
    "secdisablebackendcompression",
    "secinterceptonerror",
    "secxmlexternalentity",
    "secrequestbodyinmemorylimit",
    "secruleinheritance",
    "seccachetransformations",
    "secchrootdir",
    "secguardianlog",
    "sechttpblkey",
    "secruleperftime",
    "secmarkerperformance",
];

/// A rule as written, kept until the end of loading so that later
/// `SecRuleUpdate*`/`SecRuleRemove*` directives can change it.
struct RawRule {
    links: Vec<RawLink>,
    /// SecDefaultAction of the rule's phase when the rule was defined.
    defaults: Option<Actions>,
    file: Arc<str>,
    line: usize,
    removed: bool,
}

struct RawLink {
    targets: Vec<Target>,
    op: Op,
    actions: Actions,
}

enum RawEntry {
    Rule(Box<RawRule>),
    Marker(String),
}

impl RawRule {
    fn starter(&self) -> &Actions {
        &self.links[0].actions
    }
    fn id(&self) -> u64 {
        self.starter().id.unwrap_or(0)
    }
    fn phase(&self) -> u8 {
        self.starter().phase.unwrap_or(2)
    }
    fn tags(&self) -> impl Iterator<Item = &str> {
        self.starter().tags.iter().map(|t| t.raw.as_str())
    }
    fn msg(&self) -> &str {
        self.starter()
            .msg
            .as_ref()
            .map(|m| m.raw.as_str())
            .unwrap_or("")
    }
}

pub(crate) struct Loaded {
    pub phases: [Vec<Entry>; 5],
    pub gates: [Vec<crate::rules::Gate>; 5],
    pub groups: Vec<crate::prefilter::GroupFilter>,
    pub plans: [crate::prefilter::UnionPlan; 5],
    pub cfg: Config,
    pub files_read: Vec<String>,
    pub rule_count: usize,
    /// Chain starters' metadata by `Rule::idx`.
    pub metas: Arc<[Arc<crate::rules::RuleMeta>]>,
    pub tx_init: crate::collections::Collection,
}

struct Loader<'a> {
    src: &'a dyn FileSource,
    files_read: RefCell<Vec<String>>,
    seen_files: RefCell<HashSet<String>>,
    cfg: Config,
    defaults: [Option<Actions>; 6],
    entries: Vec<RawEntry>,
    /// Index into `entries` of the rule whose chain is still open.
    open_chain: Option<usize>,
    ids: HashSet<u64>,
    depth: usize,
}

fn err(file: &str, line: usize, col: usize, msg: impl Into<String>) -> LoadError {
    LoadError {
        file: file.to_string(),
        line,
        col,
        msg: msg.into(),
    }
}

fn werr(d: &Directive, w: &Word, off: usize, msg: impl Into<String>) -> LoadError {
    let (line, col) = w.at(off);
    err(&d.file, line, col, msg)
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Resolve `p` against the directory of the including file.
pub(crate) fn resolve(base_file: &str, p: &str) -> String {
    if p.starts_with('/') {
        return p.to_string();
    }
    let d = dir_of(base_file);
    if d.is_empty() {
        p.to_string()
    } else {
        format!("{d}/{p}")
    }
}

pub(crate) fn load(
    src: &dyn FileSource,
    entries: &[String],
    opts: &LoadOptions,
) -> Result<Loaded, LoadError> {
    let mut l = Loader {
        src,
        files_read: RefCell::new(Vec::new()),
        seen_files: RefCell::new(HashSet::new()),
        cfg: Config {
            // Palisade defaults: those of modsecurity.conf-recommended with the
            // engine on, so a policy that forgets SecRuleEngine is still protected.
            engine: EngineMode::On,
            req_body_access: true,
            resp_body_access: false,
            req_body_limit: 13_107_200,
            req_body_nofiles_limit: 131_072,
            req_body_limit_action: LimitAction::Reject,
            resp_body_limit: 524_288,
            resp_body_limit_action: LimitAction::ProcessPartial,
            resp_mime: vec!["text/plain".into(), "text/html".into(), "text/xml".into()],
            arg_separator: b'&',
            ..Config::default()
        },
        defaults: Default::default(),
        entries: Vec::new(),
        open_chain: None,
        ids: HashSet::new(),
        depth: 0,
    };
    for e in entries {
        if has_glob(e) {
            let files = src
                .glob(e)
                .map_err(|x| err(e, 0, 0, format!("cannot expand {e}: {x}")))?;
            for f in files {
                l.load_file(&f, None)?;
            }
        } else {
            l.load_file(e, None)?;
        }
    }
    if let Some(extra) = &opts.extra {
        l.load_text("<extra>", extra.as_bytes())?;
    }
    if let Some(i) = l.open_chain {
        if let Some(RawEntry::Rule(r)) = l.entries.get(i) {
            return Err(err(
                &r.file,
                r.line,
                1,
                "chained rule is missing its last link",
            ));
        }
    }
    for e in &mut l.entries {
        if let RawEntry::Rule(r) = e {
            if opts.remove_ids.contains(&r.id()) {
                r.removed = true;
            }
        }
    }
    l.finish()
}

impl Loader<'_> {
    fn note_file(&self, path: &str) {
        if self.seen_files.borrow_mut().insert(path.to_string()) {
            self.files_read.borrow_mut().push(path.to_string());
        }
    }

    fn load_file(
        &mut self,
        path: &str,
        from: Option<(&Directive, &Word)>,
    ) -> Result<(), LoadError> {
        let text = self.src.read(path).map_err(|e| match from {
            Some((d, w)) => werr(d, w, 0, format!("cannot read {path}: {e}")),
            None => err(path, 0, 0, format!("cannot read: {e}")),
        })?;
        self.note_file(path);
        self.load_text(path, &text)
    }

    fn load_text(&mut self, path: &str, text: &[u8]) -> Result<(), LoadError> {
        let file: Arc<str> = Arc::from(path);
        for d in lexer::directives(&file, text) {
            self.directive(&d)?;
        }
        Ok(())
    }

    fn arg<'d>(&self, d: &'d Directive, i: usize) -> Result<&'d Word, LoadError> {
        d.args().get(i).ok_or_else(|| {
            err(
                &d.file,
                d.line(),
                d.col(),
                format!("{} expects more arguments", d.name()),
            )
        })
    }

    fn on_off(&self, d: &Directive) -> Result<bool, LoadError> {
        let w = self.arg(d, 0)?;
        match w.text.to_ascii_lowercase().as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(werr(d, w, 0, format!("{} expects On or Off", d.name()))),
        }
    }

    fn number(&self, d: &Directive) -> Result<usize, LoadError> {
        let w = self.arg(d, 0)?;
        w.text
            .trim()
            .parse()
            .map_err(|_| werr(d, w, 0, format!("{} expects a number", d.name())))
    }

    fn limit_action(&self, d: &Directive) -> Result<LimitAction, LoadError> {
        let w = self.arg(d, 0)?;
        match w.text.to_ascii_lowercase().as_str() {
            "reject" => Ok(LimitAction::Reject),
            "processpartial" => Ok(LimitAction::ProcessPartial),
            _ => Err(werr(d, w, 0, "expected Reject or ProcessPartial")),
        }
    }

    fn directive(&mut self, d: &Directive) -> Result<(), LoadError> {
        let name = d.name().to_ascii_lowercase();
        match name.as_str() {
            "secrule" => self.sec_rule(d, false),
            "secaction" => self.sec_rule(d, true),
            "secmarker" => {
                let w = self.arg(d, 0)?;
                self.close_chain_check(d)?;
                self.entries.push(RawEntry::Marker(w.text.clone()));
                Ok(())
            }
            "secdefaultaction" => {
                let w = self.arg(d, 0)?;
                let a = self.actions(d, w)?;
                let phase = a
                    .phase
                    .ok_or_else(|| werr(d, w, 0, "SecDefaultAction must specify a phase"))?;
                if a.has_metadata() || a.chain || a.skip > 0 || a.skip_after.is_some() {
                    return Err(werr(
                        d,
                        w,
                        0,
                        "SecDefaultAction may not use metadata, chain or skip actions",
                    ));
                }
                if a.disruptive.is_none() {
                    return Err(werr(
                        d,
                        w,
                        0,
                        "SecDefaultAction must specify a disruptive action",
                    ));
                }
                self.defaults[usize::from(phase)] = Some(a);
                Ok(())
            }
            "secruleengine" => {
                let w = self.arg(d, 0)?;
                self.cfg.engine =
                    actions::ctl_engine_mode(&w.text).map_err(|m| werr(d, w, 0, m))?;
                Ok(())
            }
            "secrequestbodyaccess" => {
                self.cfg.req_body_access = self.on_off(d)?;
                Ok(())
            }
            "secresponsebodyaccess" => {
                self.cfg.resp_body_access = self.on_off(d)?;
                Ok(())
            }
            "secrequestbodylimit" => {
                self.cfg.req_body_limit = self.number(d)?;
                Ok(())
            }
            "secargumentslimit" => {
                self.cfg.args_limit = self.number(d)?;
                Ok(())
            }
            "secrequestbodyjsondepthlimit" => {
                self.cfg.json_depth_limit = self.number(d)?;
                Ok(())
            }
            "secrequestbodynofileslimit" => {
                self.cfg.req_body_nofiles_limit = self.number(d)?;
                Ok(())
            }
            "secrequestbodylimitaction" => {
                self.cfg.req_body_limit_action = self.limit_action(d)?;
                Ok(())
            }
            "secresponsebodylimit" => {
                self.cfg.resp_body_limit = self.number(d)?;
                Ok(())
            }
            "secresponsebodylimitaction" => {
                self.cfg.resp_body_limit_action = self.limit_action(d)?;
                Ok(())
            }
            "secresponsebodymimetype" => {
                for w in d.args() {
                    for t in w.text.split_whitespace() {
                        let t = t.to_ascii_lowercase();
                        if !self.cfg.resp_mime.contains(&t) {
                            self.cfg.resp_mime.push(t);
                        }
                    }
                }
                Ok(())
            }
            "secresponsebodymimetypesclear" => {
                self.cfg.resp_mime.clear();
                Ok(())
            }
            "secargumentseparator" => {
                let w = self.arg(d, 0)?;
                match w.text.as_bytes() {
                    [c] => {
                        self.cfg.arg_separator = *c;
                        Ok(())
                    }
                    _ => Err(werr(d, w, 0, "SecArgumentSeparator expects one character")),
                }
            }
            "secruleremovebyid" => {
                let mut ranges = Vec::new();
                for w in d.args() {
                    ranges.extend(
                        actions::IdRange::parse_list(&w.text).map_err(|m| werr(d, w, 0, m))?,
                    );
                }
                self.remove_where(|r| ranges.iter().any(|x| x.contains(r.id())));
                Ok(())
            }
            "secruleremovebytag" => {
                let w = self.arg(d, 0)?;
                let re = regex::Regex::new(&w.text)
                    .map_err(|e| werr(d, w, 0, format!("invalid regex: {e}")))?;
                self.remove_where(|r| r.tags().any(|t| re.is_match(t)));
                Ok(())
            }
            "secruleremovebymsg" => {
                let w = self.arg(d, 0)?;
                let re = regex::Regex::new(&w.text)
                    .map_err(|e| werr(d, w, 0, format!("invalid regex: {e}")))?;
                self.remove_where(|r| re.is_match(r.msg()));
                Ok(())
            }
            "secruleupdatetargetbyid" | "secruleupdatetargetbytag" | "secruleupdatetargetbymsg" => {
                self.update_target(d, &name)
            }
            "secruleupdateactionbyid" => self.update_action(d),
            "include" | "includeoptional" => self.include(d, name == "includeoptional"),
            "secrulescript" => Err(err(
                &d.file,
                d.line(),
                d.col(),
                "SecRuleScript (Lua) is not supported",
            )),
            n if IGNORED.contains(&n) => Ok(()),
            // Apache containers around configuration are transparent.
            n if n.starts_with("<ifmodule")
                || n.starts_with("</ifmodule")
                || n.starts_with("<ifdefine")
                || n.starts_with("</ifdefine") =>
            {
                Ok(())
            }
            _ => Err(err(
                &d.file,
                d.line(),
                d.col(),
                format!("unknown directive {}", d.name()),
            )),
        }
    }

    fn close_chain_check(&self, d: &Directive) -> Result<(), LoadError> {
        if self.open_chain.is_some() {
            return Err(err(
                &d.file,
                d.line(),
                d.col(),
                "expected the next rule of a chain",
            ));
        }
        Ok(())
    }

    fn remove_where(&mut self, f: impl Fn(&RawRule) -> bool) {
        for e in &mut self.entries {
            if let RawEntry::Rule(r) = e {
                if f(r) {
                    r.removed = true;
                }
            }
        }
    }

    fn include(&mut self, d: &Directive, optional: bool) -> Result<(), LoadError> {
        let w = self.arg(d, 0)?;
        if self.depth > 32 {
            return Err(werr(d, w, 0, "Include nested too deeply"));
        }
        let target = resolve(&d.file, &w.text);
        let files = if has_glob(&target) {
            self.src
                .glob(&target)
                .map_err(|e| werr(d, w, 0, format!("cannot expand {target}: {e}")))?
        } else {
            vec![target]
        };
        if files.is_empty() && !optional && !has_glob(&w.text) {
            return Err(werr(d, w, 0, "Include matched no file"));
        }
        self.depth += 1;
        for f in files {
            if optional && self.src.read(&f).is_err() {
                continue;
            }
            let r = self.load_file(&f, Some((d, w)));
            if r.is_err() {
                self.depth -= 1;
                return r;
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn actions(&self, d: &Directive, w: &Word) -> Result<Actions, LoadError> {
        let items = generic::parse(&w.text).map_err(|e| werr(d, w, e.offset, e.msg))?;
        let a = Actions::parse(&items).map_err(|e| werr(d, w, e.offset, e.msg))?;
        for s in &a.tsteps {
            if let TStep::Add(n) | TStep::Remove(n) = s {
                if ops::transform(n).is_none() {
                    let off = w.text.find(n.as_str()).unwrap_or(0);
                    return Err(werr(d, w, off, format!("unknown transformation {n:?}")));
                }
            }
        }
        Ok(a)
    }

    fn targets(&self, d: &Directive, w: &Word) -> Result<Vec<Target>, LoadError> {
        let items = generic::parse(&w.text).map_err(|e| werr(d, w, e.offset, e.msg))?;
        if items.is_empty() {
            return Err(werr(d, w, 0, "no variables"));
        }
        items
            .iter()
            .map(|it| {
                variables::parse_target(&it.name, it.value.as_deref())
                    .map_err(|m| werr(d, w, it.offset, m))
            })
            .collect()
    }

    fn sec_rule(&mut self, d: &Directive, is_action: bool) -> Result<(), LoadError> {
        let (targets, op, actions_word) = if is_action {
            (Vec::new(), Op::Always, d.args().first())
        } else {
            let tw = self.arg(d, 0)?;
            let ow = self.arg(d, 1)?;
            let targets = self.targets(d, tw)?;
            let spec = parse_operator(&ow.text);
            let base = d.file.to_string();
            let read = |name: &str| -> std::io::Result<Vec<u8>> {
                let p = resolve(&base, name);
                let r = self.src.read(&p);
                if r.is_ok() {
                    self.note_file(&p);
                }
                r
            };
            let op = ops::compile_operator(&spec.name, &spec.arg, spec.negated, &read)
                .map_err(|m| werr(d, ow, 0, m))?;
            (
                targets,
                Op::Real {
                    op,
                    name: spec.name,
                    arg: spec.arg,
                    negated: spec.negated,
                },
                d.args().get(2),
            )
        };
        if d.args().len() > if is_action { 1 } else { 3 } {
            let w = &d.args()[if is_action { 1 } else { 3 }];
            return Err(werr(d, w, 0, "too many arguments"));
        }
        let actions = match actions_word {
            Some(w) => self.actions(d, w)?,
            None => Actions::default(),
        };
        let link = RawLink {
            targets,
            op,
            actions,
        };
        let pos_word = actions_word.unwrap_or(&d.words[0]);
        if let Some(i) = self.open_chain {
            // A chain link: v2 forbids phase, disruptive, metadata and skips here.
            let a = &link.actions;
            if a.disruptive.is_some()
                || a.phase.is_some()
                || a.has_metadata()
                || a.skip > 0
                || a.skip_after.is_some()
            {
                return Err(werr(
                    d,
                    pos_word,
                    0,
                    "chained rules may not set disruptive, phase, metadata or skip actions (only the chain starter can)",
                ));
            }
            let more = a.chain;
            if let Some(RawEntry::Rule(r)) = self.entries.get_mut(i) {
                r.links.push(link);
            }
            if !more {
                self.open_chain = None;
            }
            return Ok(());
        }
        let id = link
            .actions
            .id
            .ok_or_else(|| werr(d, pos_word, 0, "rule has no id action"))?;
        if !self.ids.insert(id) {
            return Err(werr(d, pos_word, 0, format!("duplicate rule id {id}")));
        }
        let phase = link.actions.phase.unwrap_or(2);
        if phase == 5 {
            if let Some(dis) = &link.actions.disruptive {
                if !matches!(
                    dis,
                    Disruptive::Pass | Disruptive::Allow(_) | Disruptive::Block
                ) {
                    return Err(werr(
                        d,
                        pos_word,
                        0,
                        "disruptive actions cannot be used in the logging phase",
                    ));
                }
            }
        }
        let chain = link.actions.chain;
        self.entries.push(RawEntry::Rule(Box::new(RawRule {
            links: vec![link],
            defaults: self.defaults[usize::from(phase)].clone(),
            file: d.file.clone(),
            line: d.line(),
            removed: false,
        })));
        if chain {
            self.open_chain = Some(self.entries.len() - 1);
        }
        Ok(())
    }

    fn select_rules(&self, d: &Directive, kind: &str, w: &Word) -> Result<Vec<usize>, LoadError> {
        let mut out = Vec::new();
        match kind {
            "secruleupdatetargetbyid" | "secruleupdateactionbyid" => {
                let text = w.text.split(':').next().unwrap_or("");
                let ranges = actions::IdRange::parse_list(text).map_err(|m| werr(d, w, 0, m))?;
                for (i, e) in self.entries.iter().enumerate() {
                    if let RawEntry::Rule(r) = e {
                        if ranges.iter().any(|x| x.contains(r.id())) {
                            out.push(i);
                        }
                    }
                }
            }
            _ => {
                let re = regex::Regex::new(&w.text)
                    .map_err(|e| werr(d, w, 0, format!("invalid regex: {e}")))?;
                for (i, e) in self.entries.iter().enumerate() {
                    if let RawEntry::Rule(r) = e {
                        let hit = if kind == "secruleupdatetargetbytag" {
                            r.tags().any(|t| re.is_match(t))
                        } else {
                            re.is_match(r.msg())
                        };
                        if hit {
                            out.push(i);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn update_target(&mut self, d: &Directive, kind: &str) -> Result<(), LoadError> {
        let sel = self.arg(d, 0)?;
        let tw = self.arg(d, 1)?;
        let new = self.targets(d, tw)?;
        let replaced = match d.args().get(2) {
            Some(rw) => Some(self.targets(d, rw)?),
            None => None,
        };
        let idx = self.select_rules(d, kind, sel)?;
        for i in idx {
            if let Some(RawEntry::Rule(r)) = self.entries.get_mut(i) {
                let link = &mut r.links[0];
                match &replaced {
                    // Replace the named target in place (v2's optional third argument).
                    Some(rep) => {
                        for (old, newt) in rep.iter().zip(new.iter()) {
                            if let Some(slot) =
                                link.targets.iter_mut().find(|t| same_target(t, old))
                            {
                                *slot = newt.clone();
                            }
                        }
                    }
                    None => link.targets.extend(new.iter().cloned()),
                }
            }
        }
        Ok(())
    }

    fn update_action(&mut self, d: &Directive) -> Result<(), LoadError> {
        let sel = self.arg(d, 0)?;
        let aw = self.arg(d, 1)?;
        let new = self.actions(d, aw)?;
        if new.id.is_some() || new.phase.is_some() || new.chain {
            return Err(werr(
                d,
                aw,
                0,
                "SecRuleUpdateActionById cannot change id, phase or chain",
            ));
        }
        let idx = self.select_rules(d, "secruleupdateactionbyid", sel)?;
        for i in idx {
            if let Some(RawEntry::Rule(r)) = self.entries.get_mut(i) {
                merge_into(&mut r.links[0].actions, &new);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Loaded, LoadError> {
        let mut phases: [Vec<Entry>; 5] = Default::default();
        let mut tchain_ids: HashMap<Vec<String>, u32> = HashMap::new();
        let mut rule_count = 0;
        for e in self.entries {
            match e {
                RawEntry::Marker(m) => {
                    for p in phases.iter_mut() {
                        p.push(Entry::Marker(m.clone()));
                    }
                }
                RawEntry::Rule(r) if r.removed => {}
                RawEntry::Rule(r) => {
                    let phase = r.phase();
                    let rule = build_rule(*r, &mut tchain_ids);
                    rule_count += 1;
                    if let Some(p) = phases.get_mut(usize::from(phase.clamp(1, 5) - 1)) {
                        p.push(Entry::Rule(Box::new(rule)));
                    }
                }
            }
        }
        let tx_init = crate::fold::fold(&mut phases, &self.cfg);
        let groups = crate::prefilter::build_groups(&mut phases);
        for p in phases.iter_mut() {
            resolve_skips(p);
        }
        select_rules_for_patterns(&mut phases);
        let mut plans = crate::prefilter::union_plans(&mut phases, &groups);
        for e in phases.iter_mut().flatten() {
            if let Entry::Rule(r) = e {
                r.set_plain();
            }
        }
        mark_private_chains(&mut phases);
        // Last: the gates copy what the steps above decided.
        let gates = phases.each_ref().map(|p| crate::rules::gates(p));
        for (plan, g) in plans.iter_mut().zip(&gates) {
            plan.index_gates(g);
        }
        let metas = phases
            .iter()
            .flatten()
            .filter_map(|e| match e {
                Entry::Rule(r) => Some(r.meta.clone()),
                Entry::Marker(_) => None,
            })
            .collect();
        Ok(Loaded {
            metas,
            tx_init,
            phases,
            gates,
            groups,
            plans,
            cfg: self.cfg,
            files_read: self.files_read.into_inner(),
            rule_count,
        })
    }
}

/// Number the chain starters, then compute for every `ctl:ruleRemove*ByTag`
/// and `*ByMsg` pattern the rules it selects (see `RulePattern`).
fn select_rules_for_patterns(phases: &mut [Vec<Entry>; 5]) {
    let mut n = 0u32;
    for e in phases.iter_mut().flatten() {
        if let Entry::Rule(r) = e {
            let mut cur: Option<&mut Rule> = Some(r);
            while let Some(l) = cur {
                l.idx = n;
                cur = l.chain.as_deref_mut();
            }
            n += 1;
        }
    }
    let starters: Vec<&Rule> = phases
        .iter()
        .flatten()
        .filter_map(|e| match e {
            Entry::Rule(r) => Some(&**r),
            Entry::Marker(_) => None,
        })
        .collect();
    let select = |p: &crate::actions::RulePattern, by_msg: bool| {
        let mut bits = vec![0u64; starters.len().div_ceil(64)];
        for r in &starters {
            let hit = if by_msg {
                !r.msg_text.is_empty() && p.re.is_match(&r.msg_text)
            } else {
                r.tag_text.iter().any(|t| p.re.is_match(t))
            };
            if hit {
                bits[r.idx as usize / 64] |= 1 << (r.idx % 64);
            }
        }
        let _ = p.selected.set(bits.into());
    };
    for a in starters.iter().flat_map(|r| r.links()).flat_map(|l| &l.nd) {
        match a {
            NonDisruptive::Ctl(Ctl::RuleRemoveByTag(p))
            | NonDisruptive::Ctl(Ctl::RuleRemoveTargetByTag(p, _)) => select(p, false),
            NonDisruptive::Ctl(Ctl::RuleRemoveByMsg(p))
            | NonDisruptive::Ctl(Ctl::RuleRemoveTargetByMsg(p, _)) => select(p, true),
            _ => {}
        }
    }
}

/// Resolve each `skipAfter` to the index execution resumes at: after the
/// first following marker of that name, or after the rule with that id
/// (v2 accepts both); past the end when there is none.
fn resolve_skips(entries: &mut [Entry]) {
    for i in 0..entries.len() {
        let Some(Entry::Rule(r)) = entries.get(i) else {
            continue;
        };
        let Some(t) = r.skip_after.as_deref() else {
            continue;
        };
        let id = t.parse::<u64>().ok();
        let to = entries
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, e)| match e {
                Entry::Marker(m) => m == t,
                Entry::Rule(r) => id == Some(r.meta.id),
            })
            .map(|(j, _)| j + 1)
            .unwrap_or(entries.len());
        if let Some(Entry::Rule(r)) = entries.get_mut(i) {
            r.skip_to = to;
        }
    }
}

fn same_target(a: &Target, b: &Target) -> bool {
    use crate::variables::Selector as S;
    a.var == b.var
        && a.negated == b.negated
        && a.count == b.count
        && match (&a.sel, &b.sel) {
            (S::All, S::All) => true,
            (S::Key(x), S::Key(y)) => x.eq_ignore_ascii_case(y),
            (S::Regex(x), S::Regex(y)) => x.as_str() == y.as_str(),
            (S::XPath(x), S::XPath(y)) => x == y,
            _ => false,
        }
}

/// v2 `msre_actionset_merge`: single-valued actions of `new` replace, lists append.
fn merge_into(a: &mut Actions, new: &Actions) {
    macro_rules! over {
        ($($f:ident),*) => { $( if new.$f.is_some() { a.$f = new.$f.clone(); } )* };
    }
    over!(
        msg, logdata, severity, ver, rev, maturity, accuracy, disruptive, status, log, auditlog,
        skip_after
    );
    if new.skip > 0 {
        a.skip = new.skip;
    }
    a.capture |= new.capture;
    a.multi_match |= new.multi_match;
    a.tags.extend(new.tags.iter().cloned());
    a.tsteps.extend(new.tsteps.iter().cloned());
    a.nd.extend(new.nd.iter().cloned());
}

/// The final transformation list: the phase default's steps, then the rule's.
/// Set `Rule::private_chain` on the links that are the only readers of
/// their values through any prefix of their transformation chain: no other
/// link, and no other target of the same link, reads a variable whose
/// values can share a buffer with theirs through the same prefix (prefix
/// ids are per distinct prefix). Rules a load-time jump always passes over
/// do not count (CRS's rules above the paranoia level: 920451 shares
/// 920450's header names and `t:lowercase` only from PL2 on).
fn mark_private_chains(phases: &mut [Vec<Entry>; 5]) {
    // Variables whose values can be the same buffers: the arguments'
    // (equal names and values share one, see `state::push_args`); the
    // rest hold buffers of their own.
    let family = |v: Var| match v {
        Var::Args
        | Var::ArgsGet
        | Var::ArgsPost
        | Var::ArgsNames
        | Var::ArgsGetNames
        | Var::ArgsPostNames => Var::Args,
        v => v,
    };
    let mut users: HashMap<(u32, Var), u32> = HashMap::new();
    let reached = phases.iter().flat_map(|p| reachable(p));
    for (e, _) in phases.iter().flatten().zip(reached).filter(|(_, r)| *r) {
        if let Entry::Rule(r) = e {
            for l in r.links() {
                for t in l.targets.iter().filter(|t| !t.negated) {
                    for &(_, id) in &l.transforms {
                        *users.entry((id, family(t.var))).or_default() += 1;
                    }
                }
            }
        }
    }
    for e in phases.iter_mut().flatten() {
        if let Entry::Rule(r) = e {
            let mut link = Some(&mut **r);
            while let Some(l) = link {
                l.private_chain = !l.transforms.is_empty()
                    && l.group.is_none()
                    && l.step_slot.is_none()
                    && l.targets.iter().filter(|t| !t.negated).all(|t| {
                        l.transforms
                            .iter()
                            .all(|(_, id)| users.get(&(*id, family(t.var))) == Some(&1))
                    });
                link = l.chain.as_deref_mut();
            }
        }
    }
}

/// Per entry of a phase, whether a request can get to it: every entry
/// but those a load-time jump (`Folded::Jump`, a skip or skipAfter that
/// always happens) passes over and no other jump lands among. (A runtime
/// `ctl:ruleRemoveById` of the jump is not foreseen: this decides a cache,
/// not an outcome.)
fn reachable(entries: &[Entry]) -> Vec<bool> {
    let mut reach = vec![false; entries.len() + 1];
    if let Some(r) = reach.first_mut() {
        *r = true;
    }
    for (i, e) in entries.iter().enumerate() {
        if !reach[i] {
            continue;
        }
        let jump = match e {
            Entry::Rule(r) if r.skip_after.is_some() => Some((r.skip_to, r)),
            // `skip:N` passes over N rules (markers are not counted).
            Entry::Rule(r) if r.skip > 0 => {
                let mut left = r.skip;
                let to = entries
                    .iter()
                    .enumerate()
                    .skip(i + 1)
                    .find(|(_, e)| match e {
                        Entry::Rule(_) if left == 0 => true,
                        Entry::Rule(_) => {
                            left -= 1;
                            false
                        }
                        Entry::Marker(_) => false,
                    })
                    .map_or(entries.len(), |(j, _)| j);
                Some((to, r))
            }
            _ => None,
        };
        match jump {
            Some((to, r)) => {
                if let Some(t) = reach.get_mut(to) {
                    *t = true;
                }
                if !matches!(r.folded, crate::fold::Folded::Jump) {
                    reach[i + 1] = true;
                }
            }
            None => reach[i + 1] = true,
        }
    }
    reach.truncate(entries.len());
    reach
}

fn effective_transforms(defaults: Option<&Actions>, own: &Actions) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for s in defaults
        .map(|d| d.tsteps.as_slice())
        .unwrap_or(&[])
        .iter()
        .chain(own.tsteps.iter())
    {
        match s {
            TStep::None => list.clear(),
            TStep::Add(n) => list.push(n.to_ascii_lowercase()),
            TStep::Remove(n) => list.retain(|x| !x.eq_ignore_ascii_case(n)),
        }
    }
    list
}

fn build_rule(r: RawRule, tchain_ids: &mut HashMap<Vec<String>, u32>) -> Rule {
    let defaults = r.defaults.as_ref();
    let s = &r.links[0].actions;
    let phase = s.phase.unwrap_or(2);
    let meta = Arc::new(RuleMeta {
        id: s.id.unwrap_or(0),
        phase,
        msg: s.msg.clone(),
        logdata: s.logdata.clone(),
        tags: s.tags.clone(),
        severity: s.severity,
        ver: s.ver.clone(),
        rev: s.rev.clone(),
        maturity: s.maturity.clone(),
        accuracy: s.accuracy.clone(),
        file: r.file.clone(),
        line: r.line,
    });
    let def_dis = defaults
        .and_then(|d| d.disruptive.clone())
        .unwrap_or(Disruptive::Pass);
    let disruptive = match s.disruptive.clone() {
        Some(Disruptive::Block) => match def_dis {
            Disruptive::Block => Disruptive::Pass,
            d => d,
        },
        Some(d) => d,
        None => match def_dis {
            Disruptive::Block => Disruptive::Pass,
            d => d,
        },
    };
    let status = s.status.or_else(|| defaults.and_then(|d| d.status));
    let log = s
        .log
        .or_else(|| defaults.and_then(|d| d.log))
        .unwrap_or(true);
    let tag_text: Vec<String> = s.tags.iter().map(|t| t.raw.clone()).collect();
    let msg_text = s.msg.as_ref().map(|m| m.raw.clone()).unwrap_or_default();
    let (skip, skip_after) = (s.skip, s.skip_after.clone());
    let reads_matched_vars = reads_matched_vars(&r.links, &meta);

    // Build links back to front so each owns the next.
    let mut next: Option<Box<Rule>> = None;
    for (i, link) in r.links.into_iter().enumerate().rev() {
        let names = effective_transforms(defaults, &link.actions);
        let mut transforms = Vec::with_capacity(names.len());
        for k in 0..names.len() {
            let prefix = names[..=k].to_vec();
            let next_id = tchain_ids.len() as u32;
            let id = *tchain_ids.entry(prefix).or_insert(next_id);
            if let Some(t) = ops::transform(&names[k]) {
                transforms.push((t, id));
            }
        }
        let prefilter = match &link.op {
            Op::Real {
                op, negated: false, ..
            } => ops::required_literals(op).and_then(Prefilter::build),
            _ => None,
        };
        let op_memo = match &link.op {
            Op::Real { op, .. } if op.worth_remembering() => Some(crate::memory::next_id()),
            _ => None,
        };
        let starter = i == 0;
        let rule = Rule {
            meta: meta.clone(),
            targets: link.targets,
            op: link.op,
            transforms,
            capture: link.actions.capture,
            multi_match: link.actions.multi_match,
            nd: link.actions.nd,
            chain: next.take(),
            disruptive: if starter {
                disruptive.clone()
            } else {
                Disruptive::Pass
            },
            status,
            log,
            skip: if starter { skip } else { 0 },
            skip_after: if starter { skip_after.clone() } else { None },
            skip_to: usize::MAX,
            prefilter,
            op_memo,
            group: None,
            step_slot: None,
            op_slot: None,
            skippable: false,
            target_unions: Vec::new(),
            answer_targets: Vec::new(),
            tag_text: if starter {
                tag_text.clone()
            } else {
                Vec::new()
            },
            msg_text: if starter {
                msg_text.clone()
            } else {
                String::new()
            },
            folded: Default::default(),
            clean: None,
            idx: 0,
            reads_matched_vars: starter && reads_matched_vars,
            plain: false,
            private_chain: false,
        };
        next = Some(Box::new(rule));
    }
    match next {
        Some(b) => *b,
        None => unreachable_rule(meta),
    }
}

/// Whether any link of a rule can read MATCHED_VARS or MATCHED_VARS_NAMES:
/// as a target, or by name in the text of a macro (its actions, the
/// starter's message, log data and tags), an operator argument or a
/// redirect URL (expanded when used). A doubt answers yes.
fn reads_matched_vars(links: &[RawLink], meta: &RuleMeta) -> bool {
    let is = |v: Var| matches!(v, Var::MatchedVars | Var::MatchedVarsNames);
    let in_text = |t: &str| t.to_ascii_lowercase().contains("matched_vars");
    let in_macro = |m: &MacroStr| in_text(&m.raw);
    let in_meta = meta
        .msg
        .iter()
        .chain(&meta.logdata)
        .chain(&meta.tags)
        .any(in_macro);
    in_meta
        || links.iter().any(|l| {
            l.targets.iter().any(|t| is(t.var))
                || matches!(&l.op, Op::Real { arg, .. } if in_text(arg))
                || matches!(&l.actions.disruptive, Some(Disruptive::Redirect(u)) if in_text(u))
                || l.actions.nd.iter().any(|a| match a {
                    NonDisruptive::SetVar(sv) => {
                        in_macro(&sv.key)
                            || match &sv.op {
                                SetVarOp::Set(m) | SetVarOp::Add(m) | SetVarOp::Sub(m) => {
                                    in_macro(m)
                                }
                                SetVarOp::Delete => false,
                            }
                    }
                    NonDisruptive::SetEnv(k, v) => in_macro(k) || in_macro(v),
                    NonDisruptive::Ctl(_) | NonDisruptive::InitCol => false,
                })
        })
}

/// A rule always has at least one link; this keeps the builder total.
fn unreachable_rule(meta: Arc<RuleMeta>) -> Rule {
    Rule {
        meta,
        targets: Vec::new(),
        op: Op::Always,
        transforms: Vec::new(),
        capture: false,
        multi_match: false,
        nd: Vec::new(),
        chain: None,
        disruptive: Disruptive::Pass,
        status: None,
        log: false,
        skip: 0,
        skip_after: None,
        skip_to: usize::MAX,
        prefilter: None,
        op_memo: None,
        group: None,
        step_slot: None,
        op_slot: None,
        skippable: false,
        target_unions: Vec::new(),
        answer_targets: Vec::new(),
        tag_text: Vec::new(),
        msg_text: String::new(),
        folded: Default::default(),
        clean: None,
        reads_matched_vars: false,
        idx: 0,
        plain: false,
        private_chain: false,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::Entry;
    use crate::RuleSet;

    /// Whether the rule with this id transforms its values without the cache.
    fn private(rs: &RuleSet, id: u64) -> bool {
        rs.phases
            .iter()
            .flatten()
            .find_map(|e| match e {
                Entry::Rule(r) if r.meta.id == id => Some(r.private_chain),
                _ => None,
            })
            .expect("rule")
    }

    #[test]
    fn chains_no_reachable_link_shares_skip_the_cache() {
        let rs = RuleSet::from_text(
            "t.conf",
            r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" "id:10,phase:1,pass,t:none,t:lowercase"
SecRule REQUEST_HEADERS "@rx ^.*$" "id:11,phase:1,pass,t:none,t:lowercase"
SecRule ARGS "@rx ^.*$" "id:12,phase:1,pass,t:none,t:lowercase,t:urlDecode"
SecRule ARGS_NAMES "@rx ^.*$" "id:13,phase:1,pass,t:none,t:lowercase"
SecRule REQUEST_COOKIES "@rx ^.*$" "id:14,phase:1,pass,t:none,t:lowercase"
SecRule TX:pl "@lt 2" "id:20,phase:1,pass,nolog,skipAfter:END"
SecRule REQUEST_COOKIES "@rx ^.*$" "id:21,phase:1,pass,t:none,t:lowercase"
SecMarker END
SecRule TX:x "@eq 1" "id:30,phase:1,pass,nolog,skipAfter:END2"
SecRule REQUEST_HEADERS "@rx ^.*$" "id:31,phase:1,pass,t:none,t:lowercase"
SecMarker END2
"#,
        )
        .expect("rules");
        // Header names are buffers of their own; header values are shared
        // with 31, which a request can get to.
        assert!(private(&rs, 10));
        assert!(!private(&rs, 11) && !private(&rs, 31));
        // Argument names and values share buffers, and prefixes count.
        assert!(!private(&rs, 12) && !private(&rs, 13));
        // 21 is always jumped over (TX:pl is 1): 14 has its chain alone.
        assert!(private(&rs, 14));
    }
}
