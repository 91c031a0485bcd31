//! The operator's co-signature of withdrawals, injected into the router API (which holds no
//! keys): builds each withdrawal's `withdraw` transaction with the relayer and signs it with the
//! operator key, unless reconciliation has halted withdrawals.

use kestrel_relayer::reconcile::Reconciler;
use kestrel_relayer::withdrawals::{self, WithdrawalError, WithdrawalTerms};
use kestrel_router::api::withdrawals::{
    CosignError, CosignFuture, CosignRequest, Cosigned, WithdrawalCosigner,
};
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::signature::Keypair;
use std::sync::Arc;

/// Co-signs with the operator key over an RPC node.
pub struct OperatorCosigner {
    rpc: RpcClient,
    deployment: Deployment,
    operator: Arc<Keypair>,
    reconciler: Arc<Reconciler>,
}

impl std::fmt::Debug for OperatorCosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorCosigner")
            .field("rpc", &self.rpc.url())
            .field("exchange", &self.deployment.exchange)
            .finish_non_exhaustive()
    }
}

impl OperatorCosigner {
    /// A co-signer reading the chain at `rpc_url`, refusing while `reconciler` halts
    /// withdrawals.
    pub fn new(
        rpc_url: String,
        deployment: Deployment,
        operator: Arc<Keypair>,
        reconciler: Arc<Reconciler>,
    ) -> Self {
        OperatorCosigner {
            rpc: RpcClient::new(rpc_url),
            deployment,
            operator,
            reconciler,
        }
    }

    async fn cosign_now(&self, request: CosignRequest) -> Result<Cosigned, CosignError> {
        if self.reconciler.withdrawals_halted() {
            return Err(CosignError::Halted);
        }
        let terms = WithdrawalTerms {
            owner: request.owner,
            asset: request.asset,
            amount: request.amount,
            destination: request.destination,
        };
        let cosigned = withdrawals::cosign(&self.rpc, &self.deployment, &self.operator, terms)
            .await
            .map_err(|e| match e {
                WithdrawalError::Destination(_) => CosignError::Destination,
                other => CosignError::Chain(other.to_string()),
            })?;
        let transaction_base64 = cosigned
            .to_base64()
            .map_err(|e| CosignError::Chain(e.to_string()))?;
        let mut cosignature = [0u8; 64];
        cosignature.copy_from_slice(cosigned.cosignature.as_ref());
        Ok(Cosigned {
            transaction_base64,
            cosignature,
            last_valid_block_height: cosigned.last_valid_block_height,
        })
    }
}

impl WithdrawalCosigner for OperatorCosigner {
    fn cosign(&self, request: CosignRequest) -> CosignFuture<'_> {
        Box::pin(self.cosign_now(request))
    }
}
