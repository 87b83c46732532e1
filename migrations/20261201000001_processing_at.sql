-- When an order entered Processing. Completed and Expired are final, so `updated_at` is when
-- an order reached them; Processing is not, and its time was lost at the next transition. The
-- order timeline shows every transition with its time.
alter table orders add column processing_at timestamptz;

update orders set processing_at = updated_at where status = 'Processing';
