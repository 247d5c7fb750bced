{{ config(unique_key=['currency', 'rate_date']) }}

with

source as (

    -- the newest rate of each currency and day (of each one new files touched, on an incremental build)
    select * from {{ landing_rows('finance', 'exchange_rates') }}

),

renamed as (

    select
        currency,
        as_of as rate_date,
        cast(rate_to_usd as decimal(18, 6)) as rate_to_usd,
        filename as source_file
    from source

),

final as (

    select currency || '-' || strftime(rate_date, '%Y-%m-%d') as rate_id, * from renamed

)

select * from final
