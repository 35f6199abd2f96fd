//! What the pages read: bounded slices of a video and of an account's videos, each read in one
//! snapshot (see `storage::slices`).
use super::{CoreError, Engine};
use crate::domain::video::{self, ATTEMPTS_PAGE, Pages, StatusSlice, TREE_PAGE, VIDEOS_PAGE, Video};
use crate::domain::{AccountId, Entity, VideoId};
use crate::storage;
use sqlx::AnyConnection;

/// One page of an account's videos.
#[derive(Clone, Debug)]
pub struct VideoPage {
    /// Newest first, each as the rules see it (enough for its summary).
    pub videos: Vec<Video>,
    pub total: u32,
    pub page: u32,
}

impl Engine {
    /// Page `page` (0 = the newest) of the account's videos.
    pub async fn video_page(&self, owner: AccountId, page: u32) -> Result<VideoPage, CoreError> {
        let mut tx = self.store.read().await?;
        let offset = i64::from(page) * i64::from(VIDEOS_PAGE);
        let (videos, total) = storage::load_video_page(&mut tx, owner, i64::from(VIDEOS_PAGE), offset).await?;
        let _ = tx.rollback().await;
        Ok(VideoPage { videos, total, page })
    }

    /// What the status page of `branch` (`main` when empty) shows, at the given pages.
    pub async fn status_page(&self, video: VideoId, branch: &str, pages: Pages) -> Result<StatusSlice, CoreError> {
        let mut tx = self.store.read().await?;
        let slice = self.read_status(&mut tx, video, branch, pages).await;
        let _ = tx.rollback().await;
        slice
    }

    async fn read_status(&self, tx: &mut AnyConnection, video: VideoId, branch: &str, pages: Pages) -> Result<StatusSlice, CoreError> {
        let mut state = storage::load_rule_slice(tx, video).await?.ok_or_else(|| CoreError::not_found(Entity::Video, video))?;
        // The next run's seeds come from its branch's history (its newest storyboard or clips, or
        // its parent's before the fork), off the line after an edit: the estimate plans with
        // them too, then they go (the page shows lines).
        let line = state.checkpoints.len();
        let seeded = storage::newest_beat_checkpoints(tx, video).await?;
        state.checkpoints.extend(seeded.into_iter().filter(|c| !state.checkpoints.iter().any(|l| l.id == c.id)).collect::<Vec<_>>());
        self.add_estimates(tx, &mut state, None).await?;
        state.checkpoints.truncate(line);
        let shown = video::named_branch(&state, branch).map_err(|e| CoreError::not_found(Entity::Branch, e.0))?;
        let (id, name) = (shown.id, shown.name.clone());
        let progress = video::progress_run(&state, shown).map(|r| r.id);
        let (tree, tree_total) = storage::tree_page(tx, video, TREE_PAGE.into(), i64::from(pages.tree) * i64::from(TREE_PAGE)).await?;
        let offset = i64::from(pages.attempts) * i64::from(ATTEMPTS_PAGE);
        let attempts = storage::attempts_page(tx, id, ATTEMPTS_PAGE.into(), offset).await?;
        let (attempts_total, branch_spent_micros) = storage::branch_totals(tx, id).await?;
        let progress_tries = match progress {
            Some(run) => storage::unit_tries_of_run(tx, run).await?,
            None => Vec::new(),
        };
        Ok(StatusSlice { state, branch: name, pages, tree, tree_total, attempts, attempts_total, branch_spent_micros, progress_tries })
    }
}
