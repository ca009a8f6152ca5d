//! The wallet calls the payer makes, behind a small trait so the planning and resume logic can
//! run against a fake in unit tests; [`node_rpc::WalletClient`] is the real one.

use node_rpc::{
    AddressCheck, Broadcast, FundedTx, NodeError, SignedTx, TxOutInfo, Unspent, WalletClient,
    WalletEntry, WalletTx,
};
use pool_core::Sats;
use std::future::Future;

pub trait PaymentWallet: Send + Sync {
    fn check_address(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<AddressCheck, NodeError>> + Send;
    fn create_raw_transaction(
        &self,
        outputs: &[(String, Sats)],
    ) -> impl Future<Output = Result<String, NodeError>> + Send;
    /// Funds `hex`; with `subtract_fee_from` (output positions) the fee comes out of those
    /// outputs, split equally by the wallet.
    fn fund_raw_transaction(
        &self,
        hex: &str,
        subtract_fee_from: &[usize],
    ) -> impl Future<Output = Result<FundedTx, NodeError>> + Send;
    fn sign_raw_transaction(
        &self,
        hex: &str,
    ) -> impl Future<Output = Result<SignedTx, NodeError>> + Send;
    fn send_raw_transaction(
        &self,
        hex: &str,
    ) -> impl Future<Output = Result<Broadcast, NodeError>> + Send;
    fn get_transaction(
        &self,
        txid: &str,
    ) -> impl Future<Output = Result<Option<WalletTx>, NodeError>> + Send;
    fn get_raw_mempool(&self) -> impl Future<Output = Result<Vec<String>, NodeError>> + Send;
    fn list_unspent(
        &self,
        min_conf: u32,
    ) -> impl Future<Output = Result<Vec<Unspent>, NodeError>> + Send;
    fn get_tx_out(
        &self,
        txid: &str,
        vout: u32,
    ) -> impl Future<Output = Result<Option<TxOutInfo>, NodeError>> + Send;
    fn list_transactions(
        &self,
        count: u32,
    ) -> impl Future<Output = Result<Vec<WalletEntry>, NodeError>> + Send;
    /// Height of a block by hash (`None`: the node does not know it).
    fn block_height(
        &self,
        blockhash: &str,
    ) -> impl Future<Output = Result<Option<u64>, NodeError>> + Send;
}

impl PaymentWallet for WalletClient {
    async fn check_address(&self, address: &str) -> Result<AddressCheck, NodeError> {
        WalletClient::check_address(self, address).await
    }
    async fn create_raw_transaction(
        &self,
        outputs: &[(String, Sats)],
    ) -> Result<String, NodeError> {
        WalletClient::create_raw_transaction(self, outputs).await
    }
    async fn fund_raw_transaction(
        &self,
        hex: &str,
        subtract_fee_from: &[usize],
    ) -> Result<FundedTx, NodeError> {
        WalletClient::fund_raw_transaction(self, hex, subtract_fee_from).await
    }
    async fn sign_raw_transaction(&self, hex: &str) -> Result<SignedTx, NodeError> {
        WalletClient::sign_raw_transaction(self, hex).await
    }
    async fn send_raw_transaction(&self, hex: &str) -> Result<Broadcast, NodeError> {
        WalletClient::send_raw_transaction(self, hex).await
    }
    async fn get_transaction(&self, txid: &str) -> Result<Option<WalletTx>, NodeError> {
        WalletClient::get_transaction(self, txid).await
    }
    async fn get_raw_mempool(&self) -> Result<Vec<String>, NodeError> {
        WalletClient::get_raw_mempool(self).await
    }
    async fn list_unspent(&self, min_conf: u32) -> Result<Vec<Unspent>, NodeError> {
        WalletClient::list_unspent(self, min_conf).await
    }
    async fn get_tx_out(&self, txid: &str, vout: u32) -> Result<Option<TxOutInfo>, NodeError> {
        WalletClient::get_tx_out(self, txid, vout, true).await
    }
    async fn list_transactions(&self, count: u32) -> Result<Vec<WalletEntry>, NodeError> {
        WalletClient::list_transactions(self, count, 0).await
    }
    async fn block_height(&self, blockhash: &str) -> Result<Option<u64>, NodeError> {
        Ok(self
            .node()
            .get_block_header(blockhash)
            .await?
            .map(|h| h.height))
    }
}
