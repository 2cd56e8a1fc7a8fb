//! A purchase approval chain as a persisted state machine.
//!
//! A request goes to the team lead; above the lead's limit the lead's approval forwards it to
//! the manager, and above the manager's to the director. An approver who does not answer in
//! time is passed over: the request escalates to the next level (and expires if the director
//! does not answer either). Every machine lives in one SQLite file, one row per request with
//! its transition log; halfway through, the program "restarts" (drops everything and opens the
//! file again) and every request goes on where it was, without anyone being notified twice.
//!
//! ```sh
//! cargo run --example approval
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sagaflow::{ActionError, MachineError, SqliteOptions, SqliteStore, fsm};
use serde::{Deserialize, Serialize};

/// How long an approver has to answer (short, so the example runs in a second).
const ANSWER_WITHIN: Duration = Duration::from_millis(300);
/// Who approves at each level, and up to what amount.
const LEVELS: [(&str, &str, u64); 3] = [
    ("lead", "lea", 500),
    ("manager", "max", 5_000),
    ("director", "dora", u64::MAX),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    what: String,
    amount: u64,
}

/// A request waiting at a level, with the time its approver must answer by.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    request: Request,
    level: usize,
    deadline_ms: u64,
    trail: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Approver(String);

fsm! {
    /// A purchase request and its approvals.
    Approval {
        *Draft + Submit(Request) / file = AtLead(Pending),
        AtLead(Pending) + Approve(Approver) [within_limit] / sign = Approved(Pending),
        AtLead(Pending) + Approve(Approver) / sign_and_forward = AtManager(Pending),
        AtLead(Pending) + Timeout / escalate = AtManager(Pending),
        AtLead(Pending) + Reject(Approver) / refuse = Rejected(Pending),
        AtManager(Pending) + Approve(Approver) [within_limit] / sign = Approved(Pending),
        AtManager(Pending) + Approve(Approver) / sign_and_forward = AtDirector(Pending),
        AtManager(Pending) + Timeout / escalate = AtDirector(Pending),
        AtManager(Pending) + Reject(Approver) / refuse = Rejected(Pending),
        AtDirector(Pending) + Approve(Approver) / sign = Approved(Pending),
        AtDirector(Pending) + Reject(Approver) / refuse = Rejected(Pending),
        AtDirector(Pending) + Timeout = Expired,
        _ + Withdraw = Withdrawn,
        state AtLead(Pending) { entry = notify },
        state AtManager(Pending) { entry = notify },
        state AtDirector(Pending) { entry = notify },
        state Approved(Pending) { final, entry = order },
        state Rejected(Pending) { final },
        state Expired { final },
        state Withdrawn { final },
    }
}

impl ApprovalState {
    /// When the approver of a waiting request must answer by.
    fn deadline_ms(&self) -> Option<u64> {
        match self {
            ApprovalState::AtLead(p)
            | ApprovalState::AtManager(p)
            | ApprovalState::AtDirector(p) => Some(p.deadline_ms),
            _ => None,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn deadline() -> u64 {
    now_ms() + u64::try_from(ANSWER_WITHIN.as_millis()).unwrap_or(u64::MAX)
}

/// The office: sends mail (here, prints and counts it) and places orders.
#[derive(Default)]
struct Office {
    mails: Vec<String>,
}

impl Office {
    fn check_approver(state: &Pending, by: &Approver) -> Result<(), ActionError> {
        let (role, name, _) = LEVELS[state.level];
        if by.0 == name {
            Ok(())
        } else {
            Err(ActionError::new(format!(
                "{} is not the {role} ({name})",
                by.0
            )))
        }
    }
}

impl ApprovalContext for Office {
    async fn file(&mut self, event: Request) -> Result<Pending, ActionError> {
        Ok(Pending {
            request: event,
            level: 0,
            deadline_ms: deadline(),
            trail: Vec::new(),
        })
    }

    async fn within_limit(&mut self, state: &Pending, _event: &Approver) -> bool {
        state.request.amount <= LEVELS[state.level].2
    }

    async fn sign(&mut self, state: &Pending, event: Approver) -> Result<Pending, ActionError> {
        Self::check_approver(state, &event)?;
        let mut next = state.clone();
        next.trail.push(format!("approved by {}", event.0));
        Ok(next)
    }

    async fn sign_and_forward(
        &mut self,
        state: &Pending,
        event: Approver,
    ) -> Result<Pending, ActionError> {
        let mut next = self.sign(state, event).await?;
        next.level += 1;
        next.deadline_ms = deadline();
        Ok(next)
    }

    async fn escalate(&mut self, state: &Pending) -> Result<Pending, ActionError> {
        let mut next = state.clone();
        next.trail
            .push(format!("no answer from {}", LEVELS[state.level].1));
        next.level += 1;
        next.deadline_ms = deadline();
        Ok(next)
    }

    async fn refuse(&mut self, state: &Pending, event: Approver) -> Result<Pending, ActionError> {
        Self::check_approver(state, &event)?;
        let mut next = state.clone();
        next.trail.push(format!("rejected by {}", event.0));
        Ok(next)
    }

    async fn notify(&mut self, state: &Pending) -> Result<(), ActionError> {
        let (role, name, _) = LEVELS[state.level];
        let mail = format!(
            "to {name} ({role}): please approve `{}` ({} EUR) within {} ms",
            state.request.what,
            state.request.amount,
            ANSWER_WITHIN.as_millis()
        );
        println!("    mail {mail}");
        self.mails.push(mail);
        Ok(())
    }

    async fn order(&mut self, state: &Pending) -> Result<(), ActionError> {
        println!("    order placed: `{}`", state.request.what);
        Ok(())
    }
}

/// Fires `Timeout` on every request whose approver let the deadline pass: a sweep over every
/// approval in the file, as a periodic job of the service would run it.
async fn escalate_overdue(
    store: &SqliteStore,
    office: &mut Office,
) -> Result<(), Box<dyn std::error::Error>> {
    for id in Approval::ids(store).await? {
        let Some(mut machine) = Approval::load(store, &id).await? else {
            continue;
        };
        if machine.state().deadline_ms().is_some_and(|d| d <= now_ms()) {
            let from = machine.state_name();
            match machine.fire(office, ApprovalEvent::Timeout).await {
                Ok(_) => println!("  {id}: no answer in {from}: now {}", machine.state_name()),
                // An approver answered at the same moment, from another task or process: the
                // answer won, and the next sweep looks at the request again.
                Err(e) if e.is_conflict() => println!("  {id}: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn approve(
    store: &SqliteStore,
    office: &mut Office,
    id: &str,
    by: &str,
) -> Result<(), MachineError> {
    let mut machine = Approval::load(store, id)
        .await?
        .ok_or_else(|| MachineError::NotFound { id: id.to_owned() })?;
    let from = machine.state_name();
    machine
        .fire(office, ApprovalEvent::Approve(Approver(by.to_owned())))
        .await?;
    println!(
        "  {id}: {by} approves in {from}: now {}",
        machine.state_name()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("approvals.db");

    println!("first process:");
    {
        // The service's engine and its machines share one file.
        let store = SqliteStore::open(&path, SqliteOptions::default())?;
        let _engine = store.engine();
        let mut office = Office::default();
        let requests = [
            ("req-1", "a keyboard", 120),
            ("req-2", "a laptop", 2_400),
            ("req-3", "a server", 18_000),
        ];
        for (id, what, amount) in requests {
            let mut machine = Approval::create(&store, id).await?;
            let request = Request {
                what: what.to_owned(),
                amount,
            };
            machine
                .fire(&mut office, ApprovalEvent::Submit(request))
                .await?;
            println!("  {id}: submitted ({amount} EUR): {}", machine.state_name());
        }
        approve(&store, &mut office, "req-1", "lea").await?;
        // A wrong approver: the action fails, the request stays where it was.
        let refused = approve(&store, &mut office, "req-2", "max").await;
        println!(
            "  req-2: {}",
            refused.err().map(|e| e.to_string()).unwrap_or_default()
        );
        // Lea answers neither req-2 nor req-3 in time: both go to the manager.
        tokio::time::sleep(ANSWER_WITHIN + Duration::from_millis(50)).await;
        escalate_overdue(&store, &mut office).await?;
        println!("  {} mails sent; the process stops", office.mails.len());
    }

    println!("second process, on the same file:");
    let store = SqliteStore::open(&path, SqliteOptions::default())?;
    let mut office = Office::default();
    for id in Approval::ids(&store).await? {
        if let Some(machine) = Approval::load(&store, &id).await? {
            println!(
                "  {id}: restored in {} (version {})",
                machine.state_name(),
                machine.version()
            );
        }
    }
    assert!(office.mails.is_empty(), "restoring notifies no one again");
    approve(&store, &mut office, "req-2", "max").await?;
    // Max does not answer on req-3 either: it goes to the director.
    tokio::time::sleep(ANSWER_WITHIN + Duration::from_millis(50)).await;
    escalate_overdue(&store, &mut office).await?;
    approve(&store, &mut office, "req-3", "dora").await?;

    println!("outcome:");
    for id in Approval::ids(&store).await? {
        let machine = Approval::load(&store, &id)
            .await?
            .ok_or_else(|| MachineError::NotFound { id: id.clone() })?;
        let trail = match machine.state() {
            ApprovalState::Approved(p) | ApprovalState::Rejected(p) => p.trail.join(", "),
            _ => String::new(),
        };
        println!("  {id}: {} ({trail})", machine.state_name());
        for t in machine.history().await? {
            println!("    {}. {} + {} = {}", t.seq, t.from, t.event, t.to);
        }
        assert!(machine.is_final());
    }
    let req3 = Approval::load(&store, "req-3")
        .await?
        .ok_or_else(|| MachineError::NotFound { id: "req-3".into() })?;
    println!("\n{}", req3.mermaid());
    Ok(())
}
