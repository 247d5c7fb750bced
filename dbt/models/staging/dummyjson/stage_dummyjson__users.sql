{{ config(unique_key='user_id') }}

with

source as (

    -- the newest version of each user (of each user new files touched, on an incremental build)
    select * from {{ landing_rows('dummyjson', 'users') }}

),

renamed as (

    select
        cast(id as integer) as user_id,
        firstName as first_name,
        lastName as last_name,
        email,
        username,
        filename as source_file
    from source

),

final as (

    select * from renamed

)

select * from final
