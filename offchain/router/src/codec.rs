//! Binary encoding of [`Command`] for the journal. Signed messages are stored as their
//! canonical bytes (docs/protocol.md), so the journal holds exactly what users signed.

use crate::model::{ChainWithdrawalKind, Command, SettlementStatus};
use kestrel::encoding::{
    Cancel, CancelAll, Order, WithdrawRequest, CANCEL_ALL_LEN, CANCEL_LEN, ORDER_LEN, WITHDRAW_LEN,
};

const PLACE: u8 = 1;
const CANCEL: u8 = 2;
const CANCEL_ALL: u8 = 3;
const WITHDRAW: u8 = 4;
const DEPOSIT: u8 = 5;
const NONCE_FLOOR: u8 = 6;
const WITHDRAWAL_FINISHED: u8 = 7;
const SETTLEMENT: u8 = 8;
const TICK: u8 = 9;
const REPLACE: u8 = 10;
const WITHDRAWAL_BROADCAST: u8 = 11;
const CHAIN_WITHDRAWAL: u8 = 12;

const CHAIN_IMMEDIATE: u8 = 0;
const CHAIN_REQUESTED: u8 = 1;
const CHAIN_EXECUTED: u8 = 2;

/// Bytes that are not an encoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("undecodable journal command")]
pub struct CodecError;

/// Appends the encoding of `command` to `out`.
pub fn encode(command: &Command, out: &mut Vec<u8>) {
    match command {
        Command::Place { order, signature } => {
            out.push(PLACE);
            out.extend_from_slice(&order.encode());
            out.extend_from_slice(signature);
        }
        Command::Cancel(c) => {
            out.push(CANCEL);
            out.extend_from_slice(&c.encode());
        }
        Command::Replace {
            cancel,
            order,
            signature,
        } => {
            out.push(REPLACE);
            out.extend_from_slice(&cancel.encode());
            out.extend_from_slice(&order.encode());
            out.extend_from_slice(signature);
        }
        Command::CancelAll(c) => {
            out.push(CANCEL_ALL);
            out.extend_from_slice(&c.encode());
        }
        Command::Withdraw(w) => {
            out.push(WITHDRAW);
            out.extend_from_slice(&w.encode());
        }
        Command::DepositObserved {
            owner,
            asset,
            amount,
            tx,
            ix_index,
        } => {
            out.push(DEPOSIT);
            out.extend_from_slice(owner);
            out.push(*asset);
            out.extend_from_slice(&amount.to_le_bytes());
            out.extend_from_slice(tx);
            out.extend_from_slice(&ix_index.to_le_bytes());
        }
        Command::NonceFloorObserved { owner, floor } => {
            out.push(NONCE_FLOOR);
            out.extend_from_slice(owner);
            out.extend_from_slice(&floor.to_le_bytes());
        }
        Command::WithdrawalBroadcast {
            id,
            tx,
            last_valid_block_height,
        } => {
            out.push(WITHDRAWAL_BROADCAST);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(tx);
            out.extend_from_slice(&last_valid_block_height.to_le_bytes());
        }
        Command::ChainWithdrawal {
            owner,
            asset,
            tx,
            ix_index,
            kind,
        } => {
            out.push(CHAIN_WITHDRAWAL);
            out.extend_from_slice(owner);
            out.push(*asset);
            out.extend_from_slice(tx);
            out.extend_from_slice(&ix_index.to_le_bytes());
            match kind {
                ChainWithdrawalKind::Immediate {
                    amount,
                    cosignature,
                } => {
                    out.push(CHAIN_IMMEDIATE);
                    out.extend_from_slice(&amount.to_le_bytes());
                    out.extend_from_slice(cosignature);
                }
                ChainWithdrawalKind::Requested { amount } => {
                    out.push(CHAIN_REQUESTED);
                    out.extend_from_slice(&amount.to_le_bytes());
                }
                ChainWithdrawalKind::Executed => out.push(CHAIN_EXECUTED),
            }
        }
        Command::WithdrawalFinished { id, confirmed } => {
            out.push(WITHDRAWAL_FINISHED);
            out.extend_from_slice(&id.to_le_bytes());
            out.push(u8::from(*confirmed));
        }
        Command::SettlementUpdate {
            market,
            fill_id,
            status,
        } => {
            out.push(SETTLEMENT);
            out.extend_from_slice(&market.to_le_bytes());
            out.extend_from_slice(&fill_id.to_le_bytes());
            out.push(match status {
                SettlementStatus::Pending => 0,
                SettlementStatus::Submitted => 1,
                SettlementStatus::Confirmed => 2,
                SettlementStatus::Quarantined => 3,
            });
        }
        Command::Tick => out.push(TICK),
    }
}

/// Decodes exactly one command occupying all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Command, CodecError> {
    let (&tag, body) = bytes.split_first().ok_or(CodecError)?;
    let mut r = Reader(body);
    let command = match tag {
        PLACE => {
            let order = Order::decode(r.take(ORDER_LEN)?).map_err(|_| CodecError)?;
            Command::Place {
                order,
                signature: r.array()?,
            }
        }
        CANCEL => Command::Cancel(Cancel::decode(r.take(CANCEL_LEN)?).map_err(|_| CodecError)?),
        REPLACE => Command::Replace {
            cancel: Cancel::decode(r.take(CANCEL_LEN)?).map_err(|_| CodecError)?,
            order: Order::decode(r.take(ORDER_LEN)?).map_err(|_| CodecError)?,
            signature: r.array()?,
        },
        CANCEL_ALL => {
            Command::CancelAll(CancelAll::decode(r.take(CANCEL_ALL_LEN)?).map_err(|_| CodecError)?)
        }
        WITHDRAW => Command::Withdraw(
            WithdrawRequest::decode(r.take(WITHDRAW_LEN)?).map_err(|_| CodecError)?,
        ),
        DEPOSIT => Command::DepositObserved {
            owner: r.array()?,
            asset: r.u8()?,
            amount: u64::from_le_bytes(r.array()?),
            tx: r.array()?,
            ix_index: u16::from_le_bytes(r.array()?),
        },
        NONCE_FLOOR => Command::NonceFloorObserved {
            owner: r.array()?,
            floor: u64::from_le_bytes(r.array()?),
        },
        WITHDRAWAL_BROADCAST => Command::WithdrawalBroadcast {
            id: u64::from_le_bytes(r.array()?),
            tx: r.array()?,
            last_valid_block_height: u64::from_le_bytes(r.array()?),
        },
        CHAIN_WITHDRAWAL => Command::ChainWithdrawal {
            owner: r.array()?,
            asset: r.u8()?,
            tx: r.array()?,
            ix_index: u16::from_le_bytes(r.array()?),
            kind: match r.u8()? {
                CHAIN_IMMEDIATE => ChainWithdrawalKind::Immediate {
                    amount: u64::from_le_bytes(r.array()?),
                    cosignature: r.array()?,
                },
                CHAIN_REQUESTED => ChainWithdrawalKind::Requested {
                    amount: u64::from_le_bytes(r.array()?),
                },
                CHAIN_EXECUTED => ChainWithdrawalKind::Executed,
                _ => return Err(CodecError),
            },
        },
        WITHDRAWAL_FINISHED => Command::WithdrawalFinished {
            id: u64::from_le_bytes(r.array()?),
            confirmed: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(CodecError),
            },
        },
        SETTLEMENT => Command::SettlementUpdate {
            market: u32::from_le_bytes(r.array()?),
            fill_id: u64::from_le_bytes(r.array()?),
            status: match r.u8()? {
                0 => SettlementStatus::Pending,
                1 => SettlementStatus::Submitted,
                2 => SettlementStatus::Confirmed,
                3 => SettlementStatus::Quarantined,
                _ => return Err(CodecError),
            },
        },
        TICK => Command::Tick,
        _ => return Err(CodecError),
    };
    if r.0.is_empty() {
        Ok(command)
    } else {
        Err(CodecError)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        self.take(N)?.try_into().map_err(|_| CodecError)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang::prelude::Pubkey;
    use kestrel::encoding::{OrderType, SelfTrade, Side};

    #[test]
    fn a_replace_round_trips() {
        let owner = Pubkey::new_from_array([3; 32]);
        let exchange = Pubkey::new_from_array([9; 32]);
        let command = Command::Replace {
            cancel: Cancel {
                exchange,
                owner,
                market_index: 1,
                order_nonce: 7,
                expiry: 0,
            },
            order: Order {
                exchange,
                owner,
                market_index: 1,
                side: Side::Sell,
                order_type: OrderType::Limit,
                self_trade: SelfTrade::CancelMaker,
                price_ticks: 1_001,
                size_lots: 5,
                nonce: 8,
                expiry: 0,
                client_order_id: 42,
            },
            signature: [5; 64],
        };
        let mut bytes = Vec::new();
        encode(&command, &mut bytes);
        assert_eq!(decode(&bytes), Ok(command));
        bytes.pop();
        assert_eq!(decode(&bytes), Err(CodecError));
    }
}
